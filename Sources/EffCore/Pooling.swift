import CKernels

/// Max pooling over k x k windows. Padding counts as -infinity (TF "SAME" max-pool and
/// PyTorch's implicit padding both behave so), i.e. only real pixels compete.
public func maxPool2D(_ input: Tensor, kernel: Int, stride: Int, padding: PaddingMode = .valid) throws -> Tensor {
    try pool2D(input, kernel: kernel, stride: stride, padding: padding, operation: "maxPool2D") { window in
        var best = -Float.infinity
        window.forEach { best = max(best, $0) }
        return best
    }
}

/// Average pooling over k x k windows. With `countIncludePad` (PyTorch's default) the divisor
/// is the window's size within the padded input; without it, only real pixels count (as TF's
/// "SAME" average pool).
public func avgPool2D(_ input: Tensor, kernel: Int, stride: Int, padding: PaddingMode = .valid,
                      countIncludePad: Bool = true) throws -> Tensor {
    try pool2D(input, kernel: kernel, stride: stride, padding: padding, operation: "avgPool2D") { window in
        var sum: Float = 0
        window.forEach { sum += $0 }
        let divisor = countIncludePad ? window.paddedCount : window.validCount
        return sum / Float(divisor)
    }
}

/// The mean of each channel over all pixels: [N, H, W, C] → [N, 1, 1, C].
public func globalAveragePool(_ input: Tensor) throws -> Tensor {
    let (n, h, w, c) = try input.requireNHWC("globalAveragePool")
    guard h * w > 0 else { throw TensorError("globalAveragePool", "empty spatial extent in \(input.shape)") }
    var output = Tensor(uninitialized: [n, 1, 1, c])
    input.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { out in
            guard let src = src.baseAddress, let out = out.baseAddress else { return }
            for b in 0..<n { eff_global_average_pool(src + b * h * w * c, h * w, c, out + b * c) }
        }
    }
    return output
}

/// The pixels one pooling window covers, for one channel.
struct PoolWindow {
    let base: UnsafePointer<Float>
    let rowStride: Int, pixelStride: Int
    let rows: Range<Int>, columns: Range<Int>
    /// Pixels in the window clipped to the padded input (PyTorch's count_include_pad divisor).
    let paddedCount: Int
    var validCount: Int { rows.count * columns.count }

    @inline(__always)
    func forEach(_ body: (Float) -> Void) {
        for y in rows { for x in columns { body(base[y * rowStride + x * pixelStride]) } }
    }
}

private func pool2D(_ input: Tensor, kernel: Int, stride: Int, padding: PaddingMode, operation: String,
                    reduce: @escaping (PoolWindow) -> Float) throws -> Tensor {
    let (n, h, w, c) = try input.requireNHWC(operation)
    let pad = Padding(padding, height: h, width: w, kernel: kernel, stride: stride)
    let oh = try windowOutputSize(operation, input: h, before: pad.top, after: pad.bottom, kernel: kernel, stride: stride, dilation: 1)
    let ow = try windowOutputSize(operation, input: w, before: pad.left, after: pad.right, kernel: kernel, stride: stride, dilation: 1)
    var output = Tensor(uninitialized: [n, oh, ow, c])
    input.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { out in
            let p = UncheckedSendable((src.baseAddress, out.baseAddress, reduce))
            Threading.parallelFor(n * oh) { range in
                guard let src = p.value.0, let out = p.value.1 else { return }
                for rowIndex in range {
                    let b = rowIndex / oh, oy = rowIndex % oh
                    let y0 = oy * stride - pad.top
                    let yEnd = min(y0 + kernel, h + pad.bottom)
                    for ox in 0..<ow {
                        let x0 = ox * stride - pad.left
                        let xEnd = min(x0 + kernel, w + pad.right)
                        let paddedCount = (yEnd - y0) * (xEnd - x0)
                        let rows = max(y0, 0)..<min(yEnd, h), columns = max(x0, 0)..<min(xEnd, w)
                        let outPixel = out + (rowIndex * ow + ox) * c
                        for ch in 0..<c {
                            let window = PoolWindow(base: src + b * h * w * c + ch, rowStride: w * c, pixelStride: c,
                                                    rows: rows, columns: columns, paddedCount: paddedCount)
                            outPixel[ch] = p.value.2(window)
                        }
                    }
                }
            }
        }
    }
    return output
}
