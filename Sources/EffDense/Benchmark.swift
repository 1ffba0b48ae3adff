import EffCore
import EffImage
import EffWeights
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Latency of a model with random weights: the network forward alone, and the whole pipeline
/// (decode → pre-process → network → post-process → encode), as used by `effdense bench`.
public struct Benchmark: Sendable {
    public let name: String
    public let inputSize: (height: Int, width: Int)
    private let forward: @Sendable () throws -> Void
    private let pipeline: @Sendable (Data) throws -> Void

    /// A benchmark for a model name: a classifier (`tf_efficientnet_lite0`, ...), a detector
    /// (`tf_efficientdet_d0`, `d0`, ...) or `deeplabv3plus` with `encoder` and `outputStride`. `size` overrides the
    /// input side (detectors: a multiple of 128).
    /// `weightsFile`: a checkpoint to bind instead of random weights (what it detects changes
    /// the pipeline's drawing work, not the network's).
    public init(model: String, encoder: String = "efficientnet-b0", outputStride: Int = 16, size: Int? = nil, weightsFile: String? = nil) throws {
        name = model
        let store = try weightsFile.map(WeightStore.init(contentsOf:))
        let binder = store.map(WeightBinder.init) ?? WeightBinder(randomSeed: 7)
        if let classifier = try? ClassificationModel.named(model) {
            let keys = store.map { EfficientNetKeys(for: $0.layout) } ?? EfficientNetKeys(layout: .timm)
            let network = try EfficientNet(architecture: classifier.architecture, weights: binder, keys: keys)
            var configured = classifier.preprocessing
            if let size { configured.inputSize = size }
            let preprocessing = configured
            let side = preprocessing.inputSize
            inputSize = (side, side)
            let input = Tensor(repeating: 0.1, shape: [1, side, side, 3])
            forward = { _ = try network.logits(input) }
            pipeline = { data in
                let image = try ImageCodec.decode(data, source: "benchmark")
                let logits = try network.logits(preprocessing.tensor(for: image))
                _ = try softmaxChannels(logits)
            }
        } else if model == "deeplabv3plus" {
            let side = size ?? 512
            inputSize = (side, side)
            let network = try DeepLabV3Plus(encoder: SegmentationEncoder.named(encoder), outputStride: outputStride, numClasses: 21, weights: binder)
            let input = Tensor(repeating: 0.1, shape: [1, side, side, 3])
            forward = { _ = try network(input) }
            let segmenter = Segmenter(network: network)
            pipeline = { data in
                let mask = try segmenter.segment(ImageCodec.decode(data, source: "benchmark"))
                _ = try ImageCodec.encodePNG(pixels: mask.classes, width: mask.width, height: mask.height, format: .palette(Segmenter.vocPalette))
            }
        } else {
            let (named, configFile) = try DetectionConfig.named(model)
            var config = named
            if let size { config.imageSize = [size, size] }
            try config.validate(file: model)
            inputSize = (config.imageSize[0], config.imageSize[1])
            let network = try EfficientDet(config: config, weights: binder)
            // Labelled as `effdense detect` labels them, so the drawing costs the same.
            let labels = try config.labels.map {
                try ProjectFiles.labels(URL(fileURLWithPath: configFile).deletingLastPathComponent().appendingPathComponent($0).path)
            } ?? []
            let detector = ObjectDetector(config: config, network: network, labels: labels.count == config.numClasses ? labels : [])
            let input = Tensor(repeating: 0.1, shape: [1, config.imageSize[0], config.imageSize[1], 3])
            let text = try TextRenderer()
            forward = { _ = try network(input) }
            pipeline = { data in
                var image = try ImageCodec.decode(data, source: "benchmark")
                let detections = try detector.detect(image, postProcessing: PostProcessing(scoreThreshold: 0.4))
                image.annotate(detector.annotations(detections), text: text)
                _ = try ImageCodec.encodePNG(pixels: image.pixels, width: image.width, height: image.height, format: .rgb)
            }
        }
    }

    /// Milliseconds of `runs` network forwards after `warmup` unmeasured ones.
    public func measureForward(runs: Int, warmup: Int = 2) throws -> [Double] {
        for _ in 0..<warmup { try forward() }
        return try (0..<runs).map { _ in try Self.time(forward) }
    }

    /// Milliseconds of `runs` whole pipelines on an encoded picture.
    public func measurePipeline(_ picture: Data, runs: Int, warmup: Int = 1) throws -> [Double] {
        for _ in 0..<warmup { try pipeline(picture) }
        return try (0..<runs).map { _ in try Self.time { try pipeline(picture) } }
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    /// The `q` quantile (0...1) of measurements.
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
    }

    /// Resident memory of this process now, in MiB (VmRSS).
    public static var residentMegabytes: Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
        return kilobytes / 1024
    }

    /// Peak resident memory of this process so far, in MiB (VmHWM: unlike ru_maxrss it does not
    /// inherit the parent's peak across fork and exec).
    public static var peakResidentMegabytes: Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") {
            return kilobytes / 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
