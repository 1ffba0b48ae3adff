import CKernels

/// Max pooling over k x k windows. Padding counts as -infinity (TF "SAME" max-pool and
/// PyTorch's implicit padding both behave so), i.e. only real pixels compete.
public func maxPool2D(_ input: Tensor, kernel: Int, stride: Int, padding: PaddingMode = .valid) throws -> Tensor {
    try pool2D(input, kernel: kernel, stride: stride, padding: padding, operation: "maxPool2D", isMax: true, countIncludePad: false)
}

/// Average pooling over k x k windows. With `countIncludePad` (PyTorch's default) the divisor
/// is the window's size within the padded input; without it, only real pixels count (as TF's
/// "SAME" average pool).
public func avgPool2D(_ input: Tensor, kernel: Int, stride: Int, padding: PaddingMode = .valid,
                      countIncludePad: Bool = true) throws -> Tensor {
    try pool2D(input, kernel: kernel, stride: stride, padding: padding, operation: "avgPool2D", isMax: false,
               countIncludePad: countIncludePad)
}

/// The mean of each channel over all pixels: [N, H, W, C] → [N, 1, 1, C].
public func globalAveragePool(_ input: Tensor) throws -> Tensor {
    try OperatorProfile.measure("global average pool", "\(input.shape.last ?? 0)", input) {
        let (n, h, w, c) = try input.requireNHWC("globalAveragePool")
        guard h * w > 0 else { throw TensorError("globalAveragePool", "empty spatial extent in \(input.shape)") }
        // Blocks of 512 pixels summed over the threads, then their sums added in block order:
        // the same numbers whatever the thread count.
        let pixels = h * w, blockPixels = 512, blocks = (pixels + blockPixels - 1) / blockPixels
        var sums = [Double](repeating: 0, count: n * blocks * c)
        input.withUnsafeBufferPointer { src in
            sums.withUnsafeMutableBufferPointer { sums in
                guard let src = src.baseAddress, let sums = sums.baseAddress else { return }
                let p = UncheckedSendable((src, sums))
                Threading.parallelFor(n * blocks) { range in
                    for item in range {
                        let (b, block) = (item / blocks, item % blocks)
                        let first = block * blockPixels, count = min(blockPixels, pixels - first)
                        eff_channel_sums(p.value.0 + (b * pixels + first) * c, count, c, p.value.1 + item * c)
                    }
                }
            }
        }
        var output = Tensor(uninitialized: [n, 1, 1, c])
        output.withUnsafeMutableBufferPointer { out in
            for b in 0..<n { for ch in 0..<c {
                var total = 0.0
                for block in 0..<blocks { total += sums[(b * blocks + block) * c + ch] }
                out[b * c + ch] = Float(total / Double(pixels))
            } }
        }
        return output
    }
}

/// Pools each output row in parallel with the C kernel (`eff_pool2d`).
private func pool2D(_ input: Tensor, kernel: Int, stride: Int, padding: PaddingMode, operation: String,
                    isMax: Bool, countIncludePad: Bool) throws -> Tensor {
    let (n, h, w, c) = try input.requireNHWC(operation)
    let pad = Padding(padding, height: h, width: w, kernel: kernel, stride: stride)
    let oh = try windowOutputSize(operation, input: h, before: pad.top, after: pad.bottom, kernel: kernel, stride: stride, dilation: 1)
    let ow = try windowOutputSize(operation, input: w, before: pad.left, after: pad.right, kernel: kernel, stride: stride, dilation: 1)
    var output = Tensor(uninitialized: [n, oh, ow, c])
    input.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { out in
            let p = UncheckedSendable((src.baseAddress, out.baseAddress))
            Threading.parallelFor(n * oh, minimumPerThread: max(1, 4096 / max(1, ow * c))) { range in
                guard let src = p.value.0, let out = p.value.1 else { return }
                eff_pool2d(src, h, w, c, kernel, stride, pad.top, pad.left, pad.bottom, pad.right, oh, ow, out,
                           range.lowerBound, range.upperBound, isMax ? 1 : 0, countIncludePad ? 1 : 0)
            }
        }
    }
    return output
}
