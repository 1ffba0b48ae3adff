#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels

/// a + b, element by element (same shapes).
public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try weightedSum([a, b], weights: [1, 1])
}

/// Σ weights[i] · tensors[i], element by element (same shapes). BiFPN's fusion nodes use it.
public func weightedSum(_ tensors: [Tensor], weights: [Float]) throws -> Tensor {
    guard let first = tensors.first, tensors.count == weights.count else {
        throw TensorError("weightedSum", "needs one weight per tensor and at least one tensor, found \(tensors.count) tensors and \(weights.count) weights")
    }
    for t in tensors.dropFirst() where t.shape != first.shape {
        throw TensorError("weightedSum", "shapes differ: \(first.shape) and \(t.shape)")
    }
    var output = Tensor(uninitialized: first.shape)
    let count = first.count
    let pointers = tensors.map { UncheckedSendable(UnsafePointer($0.storage.pointer)) }
    output.withUnsafeMutableBufferPointer { out in
        let base = UncheckedSendable(out.baseAddress)
        Threading.parallelFor(count, minimumPerThread: 32768) { range in
            guard let base = base.value else { return }
            let inputs: [UnsafePointer<Float>?] = pointers.map { $0.value + range.lowerBound }
            inputs.withUnsafeBufferPointer { inputs in
                weights.withUnsafeBufferPointer { weights in
                    eff_weighted_sum(base + range.lowerBound, inputs.baseAddress, weights.baseAddress, weights.count, range.count)
                }
            }
        }
    }
    withExtendedLifetime(tensors) {}
    return output
}

/// Joins NHWC tensors with the same N, H, W along the channel axis.
public func concatChannels(_ tensors: [Tensor]) throws -> Tensor {
    try OperatorProfile.measure("concat", "\(tensors.map { $0.shape.last ?? 0 })", shape: tensors.first?.shape ?? []) {
        guard let first = tensors.first else { throw TensorError("concatChannels", "no tensors to join") }
        let (n, h, w, _) = try first.requireNHWC("concatChannels")
        var total = 0
        for t in tensors { total += try t.requireNHWC("concatChannels").c }
        var output = Tensor(uninitialized: [n, h, w, total])
        var offset = 0
        for t in tensors {
            try copyChannels(t, into: &output, channelOffset: offset)
            offset += t.shape[3]
        }
        return output
    }
}

/// Copies `source` into channels `channelOffset..<channelOffset + C` of `output`, which has the
/// same batch, height and width.
public func copyChannels(_ source: Tensor, into output: inout Tensor, channelOffset: Int) throws {
    let (n, h, w, c) = try source.requireNHWC("copyChannels")
    let (on, oh, ow, total) = try output.requireNHWC("copyChannels")
    guard (on, oh, ow) == (n, h, w), channelOffset >= 0, channelOffset + c <= total else {
        throw TensorError("copyChannels", "cannot copy \(source.shape) into channels from \(channelOffset) of \(output.shape)")
    }
    source.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { out in
            guard let src = src.baseAddress, let out = out.baseAddress else { return }
            let p = UncheckedSendable((src, out))
            Threading.parallelFor(n * h * w, minimumPerThread: 1024) { pixels in
                for pixel in pixels {
                    (p.value.1 + pixel * total + channelOffset).update(from: p.value.0 + pixel * c, count: c)
                }
            }
        }
    }
}

/// Multiplies every pixel's channels by a per-image gate: [N, H, W, C] · [N, 1, 1, C]
/// (squeeze-and-excitation's last step).
public func scaleChannels(_ input: Tensor, by gate: Tensor) throws -> Tensor {
    let (n, h, w, c) = try input.requireNHWC("scaleChannels")
    try gate.requireShape([n, 1, 1, c], "scaleChannels gate")
    var output = Tensor(uninitialized: input.shape)
    input.withUnsafeBufferPointer { src in
        gate.withUnsafeBufferPointer { g in
            output.withUnsafeMutableBufferPointer { out in
                let p = UncheckedSendable((src.baseAddress, g.baseAddress, out.baseAddress))
                Threading.parallelFor(n * h * w, minimumPerThread: 256) { range in
                    guard let src = p.value.0, let g = p.value.1, let out = p.value.2 else { return }
                    for pixel in range {
                        let gateRow = g + (pixel / (h * w)) * c
                        for ch in 0..<c { out[pixel * c + ch] = src[pixel * c + ch] * gateRow[ch] }
                    }
                }
            }
        }
    }
    return output
}

/// Applies `activation` to every element.
public func activate(_ input: Tensor, _ activation: Activation) -> Tensor {
    var output = input
    let channels = input.shape.last ?? 1
    output.withUnsafeMutableBufferPointer { out in
        guard let base = out.baseAddress, channels > 0 else { return }
        applyEpilogueParallel(base, pixels: out.count / channels, channels: channels,
                              bias: nil, activation: activation, residual: nil)
    }
    return output
}

/// The logistic sigmoid of every element.
public func sigmoid(_ input: Tensor) -> Tensor { activate(input, .sigmoid) }

/// Softmax over the last axis (channels), computed stably (max subtracted first).
public func softmaxChannels(_ input: Tensor) throws -> Tensor {
    guard let c = input.shape.last, c > 0 else { throw TensorError("softmaxChannels", "no channel axis in \(input.shape)") }
    var output = input
    output.withUnsafeMutableBufferPointer { out in
        for row in 0..<(out.count / c) {
            let base = row * c
            var peak = -Float.infinity
            for i in 0..<c { peak = max(peak, out[base + i]) }
            var sum: Float = 0
            for i in 0..<c {
                let e = expf(out[base + i] - peak)
                out[base + i] = e
                sum += e
            }
            for i in 0..<c { out[base + i] /= sum }
        }
    }
    return output
}

/// The index of the largest channel at every position (the first on ties), row-major over all
/// but the last axis.
public func argmaxChannels(_ input: Tensor) throws -> [Int32] {
    guard let c = input.shape.last, c > 0 else { throw TensorError("argmaxChannels", "no channel axis in \(input.shape)") }
    return input.withUnsafeBufferPointer { src in
        (0..<(src.count / c)).map { row in
            var best = 0
            var bestValue = src[row * c]
            for i in 1..<c where src[row * c + i] > bestValue {
                best = i
                bestValue = src[row * c + i]
            }
            return Int32(best)
        }
    }
}
