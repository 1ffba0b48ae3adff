import ArgumentParser
import EffCore
import EffDense
import EffImage
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure latency (network and whole pipeline) and peak memory, with random weights or a checkpoint.")

    @Option(help: "Model: a classifier (tf_efficientnet_lite0, ...), a detector (tf_efficientdet_d0, ...) or deeplabv3plus.")
    var model: String

    @Option(help: "Encoder for deeplabv3plus.")
    var encoder = "efficientnet-b0"

    @Option(help: "Encoder output stride for deeplabv3plus: 16 or 8.")
    var outputStride = 16

    @Option(help: "A checkpoint to use instead of random weights (the pipeline then draws what it detects).")
    var weights: String?

    @Option(help: "Input side in pixels (default: the model's).")
    var size: Int?

    @Option(help: ArgumentHelp("The picture the pipeline decodes and runs on (default: samples/astronaut.jpg).", valueName: "FILE"))
    var picture: String?

    @Option(help: "Measured runs.")
    var runs = 20

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Also time each operator (kind, channels, input size) over another --runs forward passes and list them, most time first.")
    var profile = false

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if ![8, 16].contains(outputStride) { throw ValidationError("--output-stride must be 16 or 8, found \(outputStride)") }
        if runs < 1 { throw ValidationError("--runs must be at least 1, found \(runs)") }
        if let size, size < 32 || size > 4096 { throw ValidationError("--size must be within 32...4096, found \(size)") }
    }

    func run() throws {
        runtime.apply()
        // Load: reading the checkpoint (with --weights), binding and packing the weights.
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let benchmark = try Benchmark(model: model, encoder: encoder, outputStride: outputStride, size: size, weightsFile: weights)
        let loadMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e6
        let loadedMegabytes = Benchmark.residentMegabytes
        let forward = try benchmark.measureForward(runs: runs)
        var profile: [OperatorProfile.Entry] = []
        if self.profile {
            // Separate runs: timing every operator adds a little to each.
            OperatorProfile.start()
            _ = try benchmark.measureForward(runs: runs, warmup: 0)
            profile = OperatorProfile.stop()
        }
        let picture: Data
        if let path = self.picture {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("--picture: cannot read \(path)") }
            picture = data
        } else {
            picture = try Self.picture(width: benchmark.inputSize.width, height: benchmark.inputSize.height)
        }
        let pipeline = try benchmark.measurePipeline(picture, runs: max(3, runs / 2))
        let result: [String: Any] = [
            "precision": Precision.current.rawValue,
            "model": model == "deeplabv3plus" ? "deeplabv3plus-\(encoder)" + (outputStride == 8 ? "-os8" : "") : model,
            "size": benchmark.inputSize.height, "threads": Threading.threadCount, "runs": runs,
            "median_ms": Benchmark.quantile(forward, 0.5), "p90_ms": Benchmark.quantile(forward, 0.9),
            "min_ms": forward.min() ?? .nan,
            "pipeline_median_ms": Benchmark.quantile(pipeline, 0.5), "pipeline_p90_ms": Benchmark.quantile(pipeline, 0.9),
            "peak_rss_mb": Benchmark.peakResidentMegabytes, "load_ms": loadMilliseconds, "loaded_rss_mb": loadedMegabytes,
        ]
        let perRun = Double(runs)
        if json {
            var result = result
            if self.profile {
                result["profile"] = profile.map { ["operator": $0.name, "detail": $0.detail, "ms_per_run": $0.milliseconds / perRun,
                                                   "calls_per_run": Double($0.calls) / perRun] as [String: Any] }
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@ @%d, %d threads, %@: load %.0f ms, network median %.2f ms (p90 %.2f), pipeline median %.2f ms, peak RSS %.0f MB",
                         result["model"] as? String ?? model, benchmark.inputSize.height, Threading.threadCount, Precision.current.rawValue, loadMilliseconds,
                         Benchmark.quantile(forward, 0.5), Benchmark.quantile(forward, 0.9), Benchmark.quantile(pipeline, 0.5),
                         Benchmark.peakResidentMegabytes))
            if self.profile {
                let total = profile.reduce(0) { $0 + $1.milliseconds } / perRun
                print(String(format: "operators, ms per forward pass (%.2f ms summed), share, calls per pass:", total))
                for entry in profile {
                    print(String(format: "%9.3f ms %5.1f%%  %4.1fx  %@  %@", entry.milliseconds / perRun, 100 * entry.milliseconds / perRun / max(total, 1e-9),
                                 Double(entry.calls) / perRun, entry.name, entry.detail))
                }
            }
        }
    }

    /// An encoded picture for the pipeline: samples/astronaut.jpg when found, else a synthetic PNG.
    static func picture(width: Int, height: Int) throws -> Data {
        if let sample = ProjectFiles.locate("samples/astronaut.jpg"), let data = try? Data(contentsOf: sample) { return data }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = UInt8(i % 251); pixels[3 * i + 1] = UInt8((i / width) % 253); pixels[3 * i + 2] = 128 }
        return try ImageCodec.encodePNG(pixels: pixels, width: width, height: height, format: .rgb)
    }
}
