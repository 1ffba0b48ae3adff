import CKernels

/// Nearest-neighbour resize as PyTorch's `interpolate(mode="nearest")`:
/// source index = min(floor(dst · in/out), in - 1).
public func resizeNearest(_ input: Tensor, height outH: Int, width outW: Int) throws -> Tensor {
    let (n, h, w, c) = try input.requireNHWC("resizeNearest")
    guard outH > 0, outW > 0, h > 0, w > 0 else {
        throw TensorError("resizeNearest", "cannot resize \(input.shape) to \(outH)x\(outW)")
    }
    func sourceIndices(_ inSize: Int, _ outSize: Int) -> [Int] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { min(Int((Float($0) * scale).rounded(.down)), inSize - 1) }
    }
    let ys = sourceIndices(h, outH), xs = sourceIndices(w, outW)
    var output = Tensor(uninitialized: [n, outH, outW, c])
    input.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { out in
            let p = UncheckedSendable((src.baseAddress, out.baseAddress))
            Threading.parallelFor(n * outH) { range in
                guard let src = p.value.0, let out = p.value.1 else { return }
                for rowIndex in range {
                    let b = rowIndex / outH, sy = ys[rowIndex % outH]
                    for ox in 0..<outW {
                        (out + (rowIndex * outW + ox) * c).update(from: src + ((b * h + sy) * w + xs[ox]) * c, count: c)
                    }
                }
            }
        }
    }
    return output
}

/// Bilinear resize as PyTorch's `interpolate(mode="bilinear", align_corners=...)` with an output
/// size: align_corners true maps corners to corners (scale (in-1)/(out-1)); false maps pixel
/// centres (scale in/out, source clamped at 0).
public func resizeBilinear(_ input: Tensor, height outH: Int, width outW: Int, alignCorners: Bool) throws -> Tensor {
    let (n, _, _, c) = try input.requireNHWC("resizeBilinear")
    guard outH > 0, outW > 0 else { throw TensorError("resizeBilinear", "cannot resize \(input.shape) to \(outH)x\(outW)") }
    var output = Tensor(uninitialized: [n, outH, outW, c])
    try resizeBilinear(input, alignCorners: alignCorners, into: &output, channelOffset: 0)
    return output
}

/// `resizeBilinear` to `output`'s height and width, written into its channels
/// `channelOffset..<channelOffset + C`: one part of a channel concatenation, without a copy.
public func resizeBilinear(_ input: Tensor, alignCorners: Bool, into output: inout Tensor, channelOffset: Int) throws {
    try OperatorProfile.measure("resize bilinear", "\(input.shape.last ?? 0) to "
                                    + (output.shape.count == 4 ? "\(output.shape[1])x\(output.shape[2])" : "\(output.shape)"), input) {
        let (n, h, w, c) = try input.requireNHWC("resizeBilinear")
        let (on, outH, outW, oc) = try output.requireNHWC("resizeBilinear")
        guard outH > 0, outW > 0, h > 0, w > 0, on == n, channelOffset >= 0, channelOffset + c <= oc else {
            throw TensorError("resizeBilinear", "cannot resize \(input.shape) into channels from \(channelOffset) of \(output.shape)")
        }
        let ys = LinearTaps(input: h, output: outH, alignCorners: alignCorners)
        let xs = LinearTaps(input: w, output: outW, alignCorners: alignCorners)
        let y1 = zip(ys.first, ys.step).map { $0 + $1 }, x1 = zip(xs.first, xs.step).map { $0 + $1 }
        input.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { out in
                let p = UncheckedSendable((src.baseAddress, out.baseAddress))
                Threading.parallelFor(n * outH) { range in
                    guard let src = p.value.0, let out = p.value.1 else { return }
                    eff_resize_bilinear(src, h, w, c, out + channelOffset, oc, outH, outW, ys.first, y1, ys.weight, xs.first, x1,
                                        xs.weight, range.lowerBound, range.upperBound)
                }
            }
        }
    }
}

/// For each output index of a linear resize: the first source index, the offset to the second
/// (0 at the last row/column) and the second's weight, computed as PyTorch does in float.
struct LinearTaps {
    var first: [Int] = [], step: [Int] = [], weight: [Float] = []

    init(input: Int, output: Int, alignCorners: Bool) {
        let scale: Float = alignCorners
            ? (output > 1 ? Float(input - 1) / Float(output - 1) : 0)
            : Float(input) / Float(output)
        for dst in 0..<output {
            let source = alignCorners ? scale * Float(dst) : max(scale * (Float(dst) + 0.5) - 0.5, 0)
            let index = min(Int(source), input - 1)
            first.append(index)
            step.append(index < input - 1 ? 1 : 0)
            weight.append(min(max(source - Float(index), 0), 1))
        }
    }
}

/// The channel argmax of `resizeBilinear(input, ...)` (batch 1, at most 256 channels), computed
/// band by band of output rows, so the resized scores — channels x 4 bytes per output pixel,
/// gigabytes for a large picture — never exist whole. Equal to `argmaxChannels` of the full
/// resize (same arithmetic, first maximum wins).
public func argmaxOfResizedBilinear(_ input: Tensor, height outH: Int, width outW: Int, alignCorners: Bool) throws -> [UInt8] {
    let (n, h, w, c) = try input.requireNHWC("argmaxOfResizedBilinear")
    guard n == 1, c <= 256, outH > 0, outW > 0, h > 0, w > 0 else {
        throw TensorError("argmaxOfResizedBilinear", "cannot take the argmax of \(input.shape) resized to \(outH)x\(outW) (batch 1, at most 256 channels)")
    }
    let ys = LinearTaps(input: h, output: outH, alignCorners: alignCorners)
    let xs = LinearTaps(input: w, output: outW, alignCorners: alignCorners)
    let y1 = zip(ys.first, ys.step).map { $0 + $1 }, x1 = zip(xs.first, xs.step).map { $0 + $1 }
    // About 4 MB of resized scores per band.
    let bandRows = max(1, (1 << 20) / (outW * c))
    var band = Tensor(uninitialized: [1, min(bandRows, outH), outW, c])
    var classes = [UInt8](repeating: 0, count: outH * outW)
    input.withUnsafeBufferPointer { src in
        band.withUnsafeMutableBufferPointer { scores in
            classes.withUnsafeMutableBufferPointer { out in
                let p = UncheckedSendable((src.baseAddress, scores.baseAddress, out.baseAddress))
                for top in stride(from: 0, to: outH, by: bandRows) {
                    let rows = min(bandRows, outH - top)
                    Threading.parallelFor(rows) { range in
                        guard let src = p.value.0, let scores = p.value.1, let out = p.value.2 else { return }
                        // The band's rows are output rows top..., so their taps start at `top`.
                        ys.first.withUnsafeBufferPointer { first in
                            y1.withUnsafeBufferPointer { second in
                                ys.weight.withUnsafeBufferPointer { weight in
                                    eff_resize_bilinear(src, h, w, c, scores, c, rows, outW, first.baseAddress! + top, second.baseAddress! + top,
                                                        weight.baseAddress! + top, xs.first, x1, xs.weight, range.lowerBound, range.upperBound)
                                }
                            }
                        }
                        for pixel in (range.lowerBound * outW)..<(range.upperBound * outW) {
                            let row = scores + pixel * c
                            var best = 0
                            var bestValue = row[0]
                            for i in 1..<c where row[i] > bestValue {
                                best = i
                                bestValue = row[i]
                            }
                            out[top * outW + pixel] = UInt8(best)
                        }
                    }
                }
            }
        }
    }
    return classes
}
