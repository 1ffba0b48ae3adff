import ArgumentParser
import EffBatch
import EffWeights
import Foundation

struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Inspect, convert and download checkpoints.",
        subcommands: [Inspect.self, Convert.self, Pull.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a checkpoint's tensors (name, dtype, shape), its parameter count and key layout.")

        @Argument(help: "A .safetensors file or a torch.save .pth/.pt/.bin file.")
        var file: String

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        func run() throws {
            let store = try WeightStore(contentsOf: file)
            let infos = store.infos
            let parameters = infos.filter(\.isParameter).reduce(0) { $0 + $1.elementCount }
            if json {
                let object: [String: Any] = [
                    "file": file, "format": store.format.rawValue, "layout": store.layout.rawValue,
                    "tensors_count": infos.count, "parameters": parameters,
                    "tensors": infos.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.shape] as [String: Any] },
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let nameWidth = min(72, infos.map(\.name.count).max() ?? 4)
            print("name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  dtype  shape")
            for info in infos {
                let name = info.name.padding(toLength: max(nameWidth, info.name.count), withPad: " ", startingAt: 0)
                print("\(name)  \(info.dtype.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0))  [\(info.shape.map(String.init).joined(separator: ", "))]")
            }
            print("\(infos.count) tensors, \(parameters.formatted()) parameters (excluding BatchNorm running statistics and counters)")
            print("format: \(store.format.rawValue); key layout: \(store.layout.rawValue)")
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Convert a checkpoint to safetensors.")

        @Argument(help: "A .safetensors file or a torch.save file.")
        var input: String

        @Argument(help: "The .safetensors file to write.")
        var output: String

        @Flag(help: "Store floating-point tensors as float16.")
        var fp16 = false

        func run() throws {
            // A link (symbolic or hard) to the input is the input.
            let paths = PathGuard()
            paths.reads(input, as: "the input checkpoint")
            try paths.writes(output, as: "the converted checkpoint")
            let store = try WeightStore(contentsOf: input)
            try Safetensors.write(store, to: output, halfPrecision: fp16)
            print("\(output): \(store.names.count) tensors written (\(fp16 ? "F16" : "F32") floats)")
        }
    }
}

extension WeightInfo {
    /// A learned parameter (as `model.parameters()` counts), not a BatchNorm buffer.
    var isParameter: Bool {
        dtype.isFloatingPoint && !name.hasSuffix("running_mean") && !name.hasSuffix("running_var")
    }
}
