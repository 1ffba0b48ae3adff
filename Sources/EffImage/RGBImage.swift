import EffCore

/// An 8-bit RGB picture, row-major, 3 bytes a pixel, no row padding.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// width · height · 3 bytes: R, G, B for each pixel, rows top to bottom.
    public var pixels: [UInt8]

    /// A picture from its pixels; `pixels` must hold width · height · 3 bytes.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width >= 0, height >= 0, pixels.count == width * height * 3 else {
            throw TensorError("RGBImage", "\(width)x\(height) RGB needs \(max(0, width * height * 3)) bytes, found \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A picture filled with one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.width = width
        self.height = height
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = fill.0; pixels[3 * i + 1] = fill.1; pixels[3 * i + 2] = fill.2
        }
        self.pixels = pixels
    }

    /// The picture as a [1, H, W, 3] tensor: (value / 255 - mean[c]) / std[c].
    public func tensor(mean: [Float] = [0, 0, 0], std: [Float] = [1, 1, 1]) throws -> Tensor {
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 != 0 }) else {
            throw TensorError("RGBImage.tensor", "mean and std need 3 values each and std no zero, found \(mean) and \(std)")
        }
        let scale = std.map { 1 / (255 * $0) }
        let shift = zip(mean, std).map { -$0 / $1 }
        var tensor = Tensor(uninitialized: [1, height, width, 3])
        tensor.withUnsafeMutableBufferPointer { out in
            for i in 0..<pixels.count { out[i] = Float(pixels[i]) * scale[i % 3] + shift[i % 3] }
        }
        return tensor
    }

    /// A picture from a [1, H, W, 3] tensor of values in 0...1 (clamped, rounded to nearest).
    public init(tensor: Tensor) throws {
        let (n, h, w, c) = try tensor.requireNHWC("RGBImage(tensor:)")
        guard n == 1, c == 3 else {
            throw TensorError("RGBImage(tensor:)", "expected [1, H, W, 3], found \(tensor.shape)")
        }
        let bytes = tensor.withUnsafeBufferPointer { src in
            src.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
        }
        try self.init(width: w, height: h, pixels: bytes)
    }
}
