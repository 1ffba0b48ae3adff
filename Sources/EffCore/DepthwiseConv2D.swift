import CKernels

/// A depthwise 2-D convolution (groups = channels, one k x k filter per channel), NHWC,
/// vectorised over channels. Bias, activation and an optional residual are fused into the
/// epilogue of each output row.
public struct DepthwiseConv2D: Sendable {
    public let channels: Int
    public let kernelSize: Int
    public let stride: Int
    public let dilation: Int
    public var padding: PaddingMode
    public var activation: Activation
    /// Weights packed as [k, k, channels].
    public private(set) var packedWeight: Tensor
    /// One bias per channel (zeros when the layer has none).
    public private(set) var bias: Tensor

    /// Builds the layer from PyTorch-layout weights `[channels, 1, k, k]`.
    public init(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, dilation: Int = 1,
                padding: PaddingMode = .valid, activation: Activation = .identity) throws {
        guard weight.shape.count == 4, weight.shape[1] == 1, weight.shape[2] == weight.shape[3], weight.shape[2] > 0 else {
            throw TensorError("DepthwiseConv2D", "expected weights [channels, 1, k, k], found \(weight.shape)")
        }
        guard stride > 0, dilation > 0 else {
            throw TensorError("DepthwiseConv2D", "stride \(stride) and dilation \(dilation) must be positive")
        }
        let (c, k) = (weight.shape[0], weight.shape[2])
        if let bias { try bias.requireShape([c], "DepthwiseConv2D bias") }
        channels = c; kernelSize = k
        self.stride = stride; self.dilation = dilation
        self.padding = padding; self.activation = activation
        var packed = Tensor(uninitialized: [k, k, c])
        weight.withUnsafeBufferPointer { src in
            packed.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c { for i in 0..<(k * k) { dst[i * c + ch] = src[ch * k * k + i] } }
            }
        }
        packedWeight = packed
        self.bias = bias ?? Tensor(zeros: [c])
    }

    /// This layer with `batchNorm` folded into its weights and bias.
    public func folding(_ batchNorm: BatchNorm) throws -> DepthwiseConv2D {
        var folded = self
        try foldBatchNorm(batchNorm, weight: &folded.packedWeight, bias: &folded.bias, operation: "DepthwiseConv2D")
        return folded
    }

    /// The shapes of one application: input [n, h, w, channels] → output [n, outHeight, outWidth, channels].
    struct Geometry {
        let n: Int, h: Int, w: Int
        let pad: Padding
        let outHeight: Int, outWidth: Int
    }

    func geometry(for input: Tensor) throws -> Geometry {
        let (n, h, w, c) = try input.requireNHWC("DepthwiseConv2D")
        return try geometry(n: n, h: h, w: w, c: c, shape: input.shape)
    }

    func geometry(n: Int, h: Int, w: Int, c: Int, shape: [Int]) throws -> Geometry {
        guard c == channels else {
            throw TensorError("DepthwiseConv2D", "expected \(channels) channels, found \(c) (input \(shape))")
        }
        let (k, s, d) = (kernelSize, stride, dilation)
        let pad = Padding(padding, height: h, width: w, kernel: k, stride: s, dilation: d)
        let oh = try windowOutputSize("DepthwiseConv2D", input: h, before: pad.top, after: pad.bottom, kernel: k, stride: s, dilation: d)
        let ow = try windowOutputSize("DepthwiseConv2D", input: w, before: pad.left, after: pad.right, kernel: k, stride: s, dilation: d)
        return Geometry(n: n, h: h, w: w, pad: pad, outHeight: oh, outWidth: ow)
    }

    /// Output rows `rows` (of n·outHeight; bias, activation and `residual` applied) of the input
    /// at `source` into `destination`, which holds those rows only. `residual` points at the
    /// whole residual tensor. With `channelRange`, only those channels (bounds multiples of 16,
    /// or the end) are computed.
    func computeRows(_ rows: Range<Int>, of source: UnsafePointer<Float>, _ g: Geometry, into destination: UnsafeMutablePointer<Float>,
                     residual: UnsafePointer<Float>?, channelRange: Range<Int>? = nil) {
        computeRows(rows, ofWindow: source, firstRow: 0, g, into: destination, residual: residual, channelRange: channelRange)
    }

    /// `computeRows` for one image (n = 1) of which only input rows `firstRow...` are at
    /// `window`: those the output rows need.
    func computeRows(_ rows: Range<Int>, ofWindow window: UnsafePointer<Float>, firstRow: Int, _ g: Geometry,
                     into destination: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, channelRange: Range<Int>? = nil) {
        let slice = channelRange ?? 0..<channels
        packedWeight.withUnsafeBufferPointer { wgt in
            bias.withUnsafeBufferPointer { bias in
                guard let wgt = wgt.baseAddress else { return }
                // The kernel addresses rows by their index in the whole output.
                let base = destination - rows.lowerBound * g.outWidth * channels
                eff_depthwise_window(window, firstRow, g.h, g.w, channels, wgt, kernelSize, stride, dilation, g.pad.top, g.pad.left,
                                     g.outHeight, g.outWidth, base, rows.lowerBound, rows.upperBound, slice.lowerBound,
                                     slice.upperBound, bias.baseAddress, activation.kernelCode, residual)
            }
        }
    }

    /// Applies the convolution, then bias, activation and (if given) `residual`.
    public func callAsFunction(_ input: Tensor, residual: Tensor? = nil) throws -> Tensor {
        try OperatorProfile.measure("depthwise \(kernelSize)x\(kernelSize)",
                                    "\(channels)" + strideDetail(stride: stride, dilation: dilation), input) {
            try apply(input, residual: residual)
        }
    }

    private func apply(_ input: Tensor, residual: Tensor?) throws -> Tensor {
        let g = try geometry(for: input)
        var output = Tensor(uninitialized: [g.n, g.outHeight, g.outWidth, channels])
        if let residual { try residual.requireShape(output.shape, "DepthwiseConv2D residual") }
        input.withUnsafeBufferPointer { src in
            residual.withUnsafeElementPointer { res in
                output.withUnsafeMutableBufferPointer { out in
                    let p = UncheckedSendable((src.baseAddress, res, out.baseAddress))
                    let rows = g.n * g.outHeight
                    if rows < 64 && channels >= 64 {
                        // Few rows (small pictures): slices of 16 channels over all rows, so that the
                        // threads share the work evenly and no input row is read twice.
                        Threading.parallelFor((channels + 15) / 16) { range in
                            guard let src = p.value.0, let out = p.value.2 else { return }
                            computeRows(0..<rows, of: src, g, into: out, residual: p.value.1,
                                        channelRange: range.lowerBound * 16..<min(channels, range.upperBound * 16))
                        }
                        return
                    }
                    Threading.parallelFor(rows) { range in
                        guard let src = p.value.0, let out = p.value.2 else { return }
                        computeRows(range, of: src, g, into: out + range.lowerBound * g.outWidth * channels, residual: p.value.1)
                    }
                }
            }
        }
        return output
    }
}
