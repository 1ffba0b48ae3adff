import CBLAS

/// A 2-D convolution with groups = 1, NHWC, computed as one OpenBLAS sgemm: a 1x1 convolution
/// with stride 1 multiplies the input directly ([N·H·W × Cin] · [Cin × Cout]); any other kernel
/// goes through an im2col matrix first. Bias, activation and an optional residual are fused
/// into the epilogue.
public struct Conv2D: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let dilation: Int
    public var padding: PaddingMode
    public var activation: Activation
    /// Weights packed as [kernel · kernel · inChannels, outChannels] (HWIO).
    public private(set) var packedWeight: Tensor
    /// One bias per output channel (zeros when the layer has none).
    public private(set) var bias: Tensor

    /// Builds the layer from PyTorch-layout weights `[outChannels, inChannels, k, k]`.
    public init(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, dilation: Int = 1,
                padding: PaddingMode = .valid, activation: Activation = .identity) throws {
        guard weight.shape.count == 4, weight.shape[2] == weight.shape[3], weight.shape[2] > 0 else {
            throw TensorError("Conv2D", "expected weights [out, in, k, k], found \(weight.shape)")
        }
        guard stride > 0, dilation > 0 else {
            throw TensorError("Conv2D", "stride \(stride) and dilation \(dilation) must be positive")
        }
        let (o, i, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        if let bias { try bias.requireShape([o], "Conv2D bias") }
        outChannels = o; inChannels = i; kernelSize = k
        self.stride = stride; self.dilation = dilation
        self.padding = padding; self.activation = activation
        var packed = Tensor(uninitialized: [k * k * i, o])
        weight.withUnsafeBufferPointer { src in
            packed.withUnsafeMutableBufferPointer { dst in
                for oc in 0..<o { for ic in 0..<i { for ky in 0..<k { for kx in 0..<k {
                    dst[((ky * k + kx) * i + ic) * o + oc] = src[((oc * i + ic) * k + ky) * k + kx]
                } } } }
            }
        }
        packedWeight = packed
        self.bias = bias ?? Tensor(zeros: [o])
    }

    /// This layer with `batchNorm` folded into its weights and bias.
    public func folding(_ batchNorm: BatchNorm) throws -> Conv2D {
        var folded = self
        try foldBatchNorm(batchNorm, weight: &folded.packedWeight, bias: &folded.bias, operation: "Conv2D")
        return folded
    }

    /// Output spatial size for an input of `height` x `width`.
    public func outputSize(height: Int, width: Int) throws -> (height: Int, width: Int) {
        let pad = Padding(padding, height: height, width: width, kernel: kernelSize, stride: stride, dilation: dilation)
        let oh = try windowOutputSize("Conv2D", input: height, before: pad.top, after: pad.bottom,
                                      kernel: kernelSize, stride: stride, dilation: dilation)
        let ow = try windowOutputSize("Conv2D", input: width, before: pad.left, after: pad.right,
                                      kernel: kernelSize, stride: stride, dilation: dilation)
        return (oh, ow)
    }

    /// Applies the convolution, then bias, activation and (if given) `residual`, which must
    /// have the output's shape.
    public func callAsFunction(_ input: Tensor, residual: Tensor? = nil) throws -> Tensor {
        let (n, h, w, c) = try input.requireNHWC("Conv2D")
        guard c == inChannels else {
            throw TensorError("Conv2D", "expected \(inChannels) input channels, found \(c) (input \(input.shape))")
        }
        let pad = Padding(padding, height: h, width: w, kernel: kernelSize, stride: stride, dilation: dilation)
        let (oh, ow) = try outputSize(height: h, width: w)
        var output = Tensor(uninitialized: [n, oh, ow, outChannels])
        if let residual { try residual.requireShape(output.shape, "Conv2D residual") }

        let rows = n * oh * ow
        let depth = kernelSize * kernelSize * inChannels
        let isPointwise = kernelSize == 1 && stride == 1 && pad == Padding(.valid, height: h, width: w, kernel: 1, stride: 1)
        let columns: Tensor = isPointwise ? input : im2col(input, padding: pad, outHeight: oh, outWidth: ow)

        columns.withUnsafeBufferPointer { a in
            packedWeight.withUnsafeBufferPointer { b in
                output.withUnsafeMutableBufferPointer { out in
                    guard rows > 0, let outBase = out.baseAddress else { return }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                Int32(rows), Int32(outChannels), Int32(depth),
                                1, a.baseAddress, Int32(depth), b.baseAddress, Int32(outChannels),
                                0, outBase, Int32(outChannels))
                    bias.withUnsafeBufferPointer { bias in
                        residual.withUnsafeElementPointer { res in
                            applyEpilogueParallel(outBase, pixels: rows, channels: outChannels,
                                                  bias: bias.baseAddress, activation: activation, residual: res)
                        }
                    }
                }
            }
        }
        return output
    }

    /// Rows of the im2col matrix: one per output pixel, each the k·k·Cin input values under the
    /// window (zeros where it covers padding), in HWIO order to match `packedWeight`.
    private func im2col(_ input: Tensor, padding pad: Padding, outHeight oh: Int, outWidth ow: Int) -> Tensor {
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let k = kernelSize, s = stride, d = dilation
        let depth = k * k * c
        var columns = Tensor(uninitialized: [n * oh * ow, depth])
        input.withUnsafeBufferPointer { src in
            columns.withUnsafeMutableBufferPointer { dst in
                let srcBase = UncheckedSendable(src.baseAddress), dstBase = UncheckedSendable(dst.baseAddress)
                Threading.parallelFor(n * oh) { range in
                    guard let srcBase = srcBase.value, let dstBase = dstBase.value else { return }
                    for rowIndex in range {
                        let b = rowIndex / oh, oy = rowIndex % oh
                        for ox in 0..<ow {
                            var dstPixel = dstBase + (rowIndex * ow + ox) * depth
                            for ky in 0..<k {
                                let iy = oy * s - pad.top + ky * d
                                for kx in 0..<k {
                                    let ix = ox * s - pad.left + kx * d
                                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                        dstPixel.update(from: srcBase + ((b * h + iy) * w + ix) * c, count: c)
                                    } else {
                                        dstPixel.update(repeating: 0, count: c)
                                    }
                                    dstPixel += c
                                }
                            }
                        }
                    }
                }
            }
        }
        return columns
    }
}
