import Foundation

/// Resampling filters, as Pillow defines them.
public enum ResampleFilter: String, Sendable, CaseIterable {
    case bilinear, bicubic

    var support: Double { self == .bilinear ? 1 : 2 }

    func weight(_ x: Double) -> Double {
        let x = abs(x)
        switch self {
        case .bilinear:
            return x < 1 ? 1 - x : 0
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}

extension RGBImage {
    /// The picture resized exactly as Pillow's `Image.resize` does (antialiased when shrinking,
    /// fixed-point 8-bit coefficients, horizontal pass then vertical, each rounded to 8 bits), so
    /// that pre-processing matches timm / torchvision pipelines pixel for pixel.
    public func resized(width outWidth: Int, height outHeight: Int, filter: ResampleFilter = .bicubic) throws -> RGBImage {
        guard outWidth > 0, outHeight > 0, width > 0, height > 0 else {
            throw ImageError(.invalidArgument, "resize", "cannot resize \(width)x\(height) to \(outWidth)x\(outHeight)")
        }
        // The target's size comes from flags (--crop-pct, --size) and the picture's shape: bound
        // it as decoding bounds a picture, before anything is allocated (the horizontal pass
        // allocates outWidth x height).
        let (target, overflow) = outWidth.multipliedReportingOverflow(by: outHeight)
        let (between, overflowBetween) = outWidth.multipliedReportingOverflow(by: height)
        guard !overflow, !overflowBetween, target <= ImageCodec.defaultMaxPixels, between <= ImageCodec.defaultMaxPixels else {
            throw ImageError(.tooLarge, "resize", "resizing \(width)x\(height) to \(outWidth)x\(outHeight) would make a picture of more than \(ImageCodec.defaultMaxPixels) pixels")
        }
        if outWidth == width && outHeight == height { return self }
        var horizontal = self
        if outWidth != width {
            horizontal = try resample(self, along: .horizontal, to: outWidth, filter: filter)
        }
        if outHeight != height {
            return try resample(horizontal, along: .vertical, to: outHeight, filter: filter)
        }
        return horizontal
    }

    /// The centred `width` x `height` window, with torchvision's CenterCrop offsets
    /// (round((size - crop) / 2), half to even).
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) throws -> RGBImage {
        guard cropWidth > 0, cropHeight > 0, cropWidth <= width, cropHeight <= height else {
            throw ImageError(.invalidArgument, "crop", "cannot crop \(cropWidth)x\(cropHeight) out of \(width)x\(height)")
        }
        let top = Int((Double(height - cropHeight) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - cropWidth) / 2).rounded(.toNearestOrEven))
        return try cropped(x: left, y: top, width: cropWidth, height: cropHeight)
    }

    /// The `width` x `height` window at `x`, `y` (inside the picture).
    public func cropped(x left: Int, y top: Int, width cropWidth: Int, height cropHeight: Int) throws -> RGBImage {
        guard cropWidth > 0, cropHeight > 0, left >= 0, top >= 0, left + cropWidth <= width, top + cropHeight <= height else {
            throw ImageError(.invalidArgument, "crop", "cannot crop \(cropWidth)x\(cropHeight) at \(left),\(top) out of \(width)x\(height)")
        }
        var out = [UInt8](repeating: 0, count: cropWidth * cropHeight * 3)
        for y in 0..<cropHeight {
            let src = ((top + y) * width + left) * 3
            out.replaceSubrange((y * cropWidth * 3)..<((y + 1) * cropWidth * 3), with: pixels[src..<(src + cropWidth * 3)])
        }
        return try RGBImage(width: cropWidth, height: cropHeight, pixels: out)
    }
}

private enum Axis { case horizontal, vertical }

/// Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis.
private struct ResampleKernel {
    static let precisionBits = 32 - 8 - 2
    var first: [Int] = []
    var count: [Int] = []
    var coefficients: [Int32] = []
    var size = 0

    init(input: Int, output: Int, filter: ResampleFilter) {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        size = Int(support.rounded(.up)) * 2 + 1
        coefficients = [Int32](repeating: 0, count: output * size)
        var weights = [Double](repeating: 0, count: size)
        for xx in 0..<output {
            let center = (Double(xx) + 0.5) * scale
            let inverse = 1 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), input) - xmin
            var total = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * inverse)
                weights[x] = w
                total += w
            }
            for x in 0..<xmax {
                let w = total != 0 ? weights[x] / total : weights[x]
                let fixed = w * Double(1 << Self.precisionBits)
                coefficients[xx * size + x] = Int32(w < 0 ? (-0.5 + fixed).rounded(.towardZero) : (0.5 + fixed).rounded(.towardZero))
            }
            first.append(xmin)
            count.append(xmax)
        }
    }
}

private func resample(_ image: RGBImage, along axis: Axis, to size: Int, filter: ResampleFilter) throws -> RGBImage {
    let horizontal = axis == .horizontal
    let kernel = ResampleKernel(input: horizontal ? image.width : image.height, output: size, filter: filter)
    let (outWidth, outHeight) = horizontal ? (size, image.height) : (image.width, size)
    var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
    let rounding = Int64(1) << (ResampleKernel.precisionBits - 1)
    image.pixels.withUnsafeBufferPointer { src in
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let i = horizontal ? x : y
                let start = kernel.first[i], taps = kernel.count[i], k = i * kernel.size
                for c in 0..<3 {
                    var sum = rounding
                    for t in 0..<taps {
                        let (sx, sy) = horizontal ? (start + t, y) : (x, start + t)
                        sum += Int64(src[(sy * image.width + sx) * 3 + c]) * Int64(kernel.coefficients[k + t])
                    }
                    out[(y * outWidth + x) * 3 + c] = UInt8(clamping: sum >> Int64(ResampleKernel.precisionBits))
                }
            }
        }
    }
    return try RGBImage(width: outWidth, height: outHeight, pixels: out)
}
