import ArgumentParser
import EffCore
import EffImage
import Foundation

/// A stand-in for the main job until detection lands: decodes pictures, runs them through the
/// kernels (bilinear resize, depthwise blur, convolutions with fused ReLU) and writes an edge map.
struct SmokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smoke",
        abstract: "Decode pictures, run the CPU kernels on them and write an edge-map PNG for each.")

    @Argument(help: "PNG or JPEG pictures.")
    var images: [String]

    @Option(name: .shortAndLong, help: "Output PNG (one input only; default: IMG.edges.png beside the input).")
    var output: String?

    @Option(help: "Longer side of the resized picture.")
    var size: Int = 512

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one picture") }
        if output != nil && images.count > 1 { throw ValidationError("-o takes one input; found \(images.count)") }
        if size < 8 || size > 8192 { throw ValidationError("--size must be within 8...8192, found \(size)") }
    }

    func run() throws {
        runtime.apply()
        let filter = try EdgeFilter()
        for path in images {
            let start = Date()
            let image = try ImageCodec.decode(contentsOf: path)
            let scale = Double(size) / Double(max(image.width, image.height))
            let height = max(1, Int((Double(image.height) * scale).rounded()))
            let width = max(1, Int((Double(image.width) * scale).rounded()))
            let resized = try resizeBilinear(image.tensor(), height: height, width: width, alignCorners: false)
            let edges = try filter(resized)
            let target = output ?? (path as NSString).deletingPathExtension + ".edges.png"
            guard URL(fileURLWithPath: target).standardizedFileURL != URL(fileURLWithPath: path).standardizedFileURL else {
                throw ValidationError("\(target): refusing to overwrite the input")
            }
            let gray = edges.withUnsafeBufferPointer { $0.map { UInt8(min(max($0, 0), 1) * 255) } }
            try ImageCodec.writePNG(pixels: gray, width: width, height: height, format: .gray, to: target)
            let ms = Date().timeIntervalSince(start) * 1000
            print("\(path): \(image.width)x\(image.height) → \(width)x\(height) edge map in \(target) (\(String(format: "%.1f", ms)) ms, \(Threading.threadCount) threads)")
        }
    }
}

/// Gaussian blur (depthwise 3x3), luma (1x1 conv), Sobel |gx| + |gy| (3x3 conv with ReLU on
/// ±gx, ±gy, then a 1x1 sum).
struct EdgeFilter {
    let blur: DepthwiseConv2D
    let luma: Conv2D
    let sobel: Conv2D
    let magnitude: Conv2D

    init() throws {
        let gauss: [Float] = [1, 2, 1, 2, 4, 2, 1, 2, 1].map { $0 / 16 }
        blur = try DepthwiseConv2D(weight: Tensor(shape: [3, 1, 3, 3], values: gauss + gauss + gauss), padding: .same)
        luma = try Conv2D(weight: Tensor(shape: [1, 3, 1, 1], values: [0.299, 0.587, 0.114]))
        let gx: [Float] = [-1, 0, 1, -2, 0, 2, -1, 0, 1]
        let gy: [Float] = [-1, -2, -1, 0, 0, 0, 1, 2, 1]
        let kernels = [gx, gx.map { -$0 }, gy, gy.map { -$0 }].flatMap { $0 }
        sobel = try Conv2D(weight: Tensor(shape: [4, 1, 3, 3], values: kernels), padding: .same, activation: .relu)
        magnitude = try Conv2D(weight: Tensor(shape: [1, 4, 1, 1], values: [0.5, 0.5, 0.5, 0.5]))
    }

    func callAsFunction(_ rgb: Tensor) throws -> Tensor {
        try magnitude(sobel(luma(blur(rgb))))
    }
}
