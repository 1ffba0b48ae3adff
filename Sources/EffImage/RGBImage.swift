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

    /// The picture as shown for an EXIF orientation (1...8, TIFF's meaning; others: unchanged):
    /// mirrored and / or turned as Pillow's `ImageOps.exif_transpose` does.
    public func oriented(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let (w, h) = (width, height)
        let swapsAxes = orientation >= 5
        let (outWidth, outHeight) = swapsAxes ? (h, w) : (w, h)
        // Where the shown pixel (x, y) is stored.
        let source: (Int, Int) -> (Int, Int)
        switch orientation {
        case 2: source = { x, y in (w - 1 - x, y) }              // mirrored left-right
        case 3: source = { x, y in (w - 1 - x, h - 1 - y) }      // turned 180 degrees
        case 4: source = { x, y in (x, h - 1 - y) }              // mirrored top-bottom
        case 5: source = { x, y in (y, x) }                      // transposed
        case 6: source = { x, y in (y, h - 1 - x) }              // turned 90 degrees clockwise to show
        case 7: source = { x, y in (w - 1 - y, h - 1 - x) }      // transversed
        default: source = { x, y in (w - 1 - y, x) }             // 8: turned 90 degrees counter-clockwise
        }
        var out = [UInt8](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outHeight {
                    for x in 0..<outWidth {
                        let (sx, sy) = source(x, y)
                        let from = (sy * w + sx) * 3, to = (y * outWidth + x) * 3
                        dst[to] = src[from]; dst[to + 1] = src[from + 1]; dst[to + 2] = src[from + 2]
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: outHeight, orientedPixels: out)
    }

    private init(width: Int, height: Int, orientedPixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = orientedPixels
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
