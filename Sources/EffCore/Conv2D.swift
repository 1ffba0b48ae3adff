import CBLAS
import CKernels
import Synchronization

/// A 2-D convolution with groups = 1, NHWC, computed as one GEMM with weights packed at load
/// (`eff_gemm_packed`): a 1x1 convolution with stride 1 multiplies the input directly
/// ([N·H·W × Cin] · [Cin × Cout]); any other kernel goes through an im2col matrix first. Bias,
/// activation and an optional residual are applied to each block of the output while it is in
/// cache.
public struct Conv2D: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let dilation: Int
    public var padding: PaddingMode
    public var activation: Activation
    /// The [kernel · kernel · inChannels, outChannels] (HWIO) weight matrix packed for the GEMM
    /// kernel: panels of 16 output channels, each [k·k·Cin][16], zero-padded to a multiple of 32.
    public private(set) var packedWeight: Tensor
    /// One bias per output channel (zeros when the layer has none).
    public private(set) var bias: Tensor
    /// `packedWeight` rounded to bf16 pairs, made at the first bfloat16 call (`Precision`).
    private var bf16Panels = BF16Panels()

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
        var matrix = [Float](repeating: 0, count: k * k * i * o)
        weight.withUnsafeBufferPointer { source in
            matrix.withUnsafeMutableBufferPointer { destination in
                guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
                if k == 1 {
                    // [out, in] → [in, out]: OpenBLAS's blocked transpose.
                    cblas_somatcopy(CblasRowMajor, CblasTrans, Int32(o), Int32(i), 1, src, Int32(i), dst, Int32(o))
                    return
                }
                // OIHW → HWIO, reading the source in order.
                for oc in 0..<o { for ic in 0..<i { for ky in 0..<k { for kx in 0..<k {
                    dst[((ky * k + kx) * i + ic) * o + oc] = src[((oc * i + ic) * k + ky) * k + kx]
                } } } }
            }
        }
        var packed = Tensor(zeros: [eff_gemm_packed_size(k * k * i, o)])
        packed.withUnsafeMutableBufferPointer { dst in
            guard let base = dst.baseAddress else { return }
            eff_gemm_pack_b(matrix, k * k * i, o, base)
        }
        packedWeight = packed
        self.bias = bias ?? Tensor(zeros: [o])
    }

    /// This layer with `batchNorm` folded into its weights and bias.
    public func folding(_ batchNorm: BatchNorm) throws -> Conv2D {
        var folded = self
        try foldBatchNorm(batchNorm, weight: &folded.packedWeight, bias: &folded.bias, operation: "Conv2D",
                          panelDepth: kernelSize * kernelSize * inChannels)
        folded.bf16Panels = BF16Panels()
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

    /// The convolution of `input` with each input channel scaled by `inputScale` ([1, 1, 1, Cin],
    /// batch 1): computed by scaling the weights, not the input (squeeze-and-excitation's gate
    /// folded into the projection that follows it).
    public func callAsFunction(_ input: Tensor, scalingInputChannelsBy inputScale: Tensor, residual: Tensor? = nil) throws -> Tensor {
        try inputScale.requireShape([1, 1, 1, inChannels], "Conv2D input scale")
        guard input.shape.first == 1 else {
            return try self(scaleChannels(input, by: inputScale), residual: residual)
        }
        var scaled = self
        scaled.bf16Panels = BF16Panels()
        let depth = kernelSize * kernelSize * inChannels
        inputScale.withUnsafeBufferPointer { g in
            scaled.packedWeight.withUnsafeMutableBufferPointer { w in
                // Row p of every panel holds input channel p % inChannels.
                for panel in 0..<(w.count / (depth * 16)) { for p in 0..<depth {
                    let row = (panel * depth + p) * 16, gate = g[p % inChannels]
                    for j in 0..<16 { w[row + j] *= gate }
                } }
            }
        }
        return try scaled(input, residual: residual)
    }

    /// Applies the convolution, then bias, activation and (if given) `residual`, which must
    /// have the output's shape.
    public func callAsFunction(_ input: Tensor, residual: Tensor? = nil) throws -> Tensor {
        let (n, h, w, _) = try input.requireNHWC("Conv2D")
        let (oh, ow) = try outputSize(height: h, width: w)
        var output = Tensor(uninitialized: [n, oh, ow, outChannels])
        if let residual { try residual.requireShape(output.shape, "Conv2D residual") }
        try apply(input, residual: residual, into: &output, channelOffset: 0)
        return output
    }

    /// The convolution (bias and activation applied) written into channels
    /// `channelOffset..<channelOffset + outChannels` of `output`, which has the output's batch,
    /// height and width: one part of a channel concatenation, without a copy.
    public func callAsFunction(_ input: Tensor, into output: inout Tensor, channelOffset: Int) throws {
        try apply(input, residual: nil, into: &output, channelOffset: channelOffset)
    }

    private func apply(_ input: Tensor, residual: Tensor?, into output: inout Tensor, channelOffset: Int) throws {
        try OperatorProfile.measure("conv \(kernelSize)x\(kernelSize)", layerDetail(residual: residual != nil), input) {
            try compute(input, residual: residual, into: &output, channelOffset: channelOffset)
        }
    }

    private func compute(_ input: Tensor, residual: Tensor?, into output: inout Tensor, channelOffset: Int) throws {
        let (n, h, w, c) = try input.requireNHWC("Conv2D")
        guard c == inChannels else {
            throw TensorError("Conv2D", "expected \(inChannels) input channels, found \(c) (input \(input.shape))")
        }
        let pad = Padding(padding, height: h, width: w, kernel: kernelSize, stride: stride, dilation: dilation)
        let (oh, ow) = try outputSize(height: h, width: w)
        let (on, outH, outW, ldc) = try output.requireNHWC("Conv2D output")
        guard (on, outH, outW) == (n, oh, ow), channelOffset >= 0, channelOffset + outChannels <= ldc else {
            throw TensorError("Conv2D", "cannot write \([n, oh, ow, outChannels]) into channels from \(channelOffset) of \(output.shape)")
        }

        let rows = n * oh * ow
        let depth = kernelSize * kernelSize * inChannels
        let isPointwise = kernelSize == 1 && stride == 1 && pad == Padding(.valid, height: h, width: w, kernel: 1, stride: 1)
        // Tiles of output rows (at most 256 KB of im2col rows each), spread over the threads:
        // im2col (when needed), then the GEMM with its epilogue.
        let threads = Threading.threadCount
        let largestTile = max(16, min(256, (1 << 16) / max(depth, 1)))
        if inChannels <= 4 && kernelSize > 1 && dilation == 1 && residual == nil && channelOffset == 0
            && directSmallInput(input, pad: pad, into: &output) {
            return
        }
        if isPointwise && rows < 64 * threads && outChannels >= 64 {
            // Too few rows for every thread to get 64 (7x7 layers, a classifier): split the output
            // channels over the threads instead.
            let blocks = (outChannels + 31) / 32
            withKernelPointers(input, residual, &output, channelOffset: channelOffset) { p in
                p.layer.withSharedRows(p.input, rows: rows, depth: inChannels) { a in
                    Threading.parallelFor(blocks) { range in
                        let n0 = range.lowerBound * 32, n1 = min(outChannels, range.upperBound * 32)
                        p.layer.gemm(a, rows: rows, depth: inChannels, columns: n1 - n0, firstColumn: n0,
                                     output: p.output + n0, ldc: p.ldc, residual: p.residual.map { $0 + n0 },
                                     prefetchAfter: outChannels - n1)
                    }
                }
            }
            return
        }
        let tile = Self.balancedTile(rows: rows, largest: largestTile, threads: threads)
        let tiles = (rows + tile - 1) / tile
        withKernelPointers(input, residual, &output, channelOffset: channelOffset) { p in
            Threading.parallelFor(tiles) { range in
                // One tile of im2col rows per range (none for a 1x1 convolution).
                let columns = UnsafeMutablePointer<Float>.allocate(capacity: isPointwise ? 1 : tile * depth)
                defer { columns.deallocate() }
                for t in range {
                    let r0 = t * tile, count = min(tile, rows - r0)
                    if !isPointwise {
                        im2col(p.input, batchHeight: h, width: w, channels: c, padding: pad, outHeight: oh, outWidth: ow,
                               rows: r0..<(r0 + count), into: columns)
                    }
                    p.layer.gemm(isPointwise ? p.input + r0 * depth : UnsafePointer(columns), lda: depth, rows: count, depth: depth,
                           columns: outChannels, output: p.output + r0 * p.ldc, ldc: p.ldc,
                           residual: p.residual.map { $0 + r0 * outChannels })
                }
            }
        }
    }

    /// This 1x1 convolution applied to `depthwise(input)` (a separable convolution), band by
    /// band: each band of whole depthwise output rows, sized to stay in cache, is multiplied
    /// right away, so the depthwise output never goes through memory. The numbers are those of
    /// `self(depthwise(input), residual:)`.
    public func callAsFunction(depthwise: DepthwiseConv2D, of input: Tensor, residual: Tensor? = nil) throws -> Tensor {
        let g = try depthwise.geometry(for: input)
        var output = Tensor(uninitialized: [g.n, g.outHeight, g.outWidth, outChannels])
        if let residual { try residual.requireShape(output.shape, "Conv2D residual") }
        try separable(depthwise: depthwise, of: input, residual: residual, then: nil, into: &output, channelOffset: 0)
        return output
    }

    /// `self(depthwise: depthwise, of: input)` written into channels
    /// `channelOffset..<channelOffset + outChannels` of `output` (the same batch, height and
    /// width): one part of a channel concatenation, without a copy.
    public func callAsFunction(depthwise: DepthwiseConv2D, of input: Tensor, into output: inout Tensor, channelOffset: Int) throws {
        try separable(depthwise: depthwise, of: input, residual: nil, then: nil, into: &output, channelOffset: channelOffset)
    }

    /// `next(self(depthwise: depthwise, of: input))`, the second 1x1 convolution applied to each
    /// band as well, so that this layer's output never goes through memory either (DeepLabV3+'s
    /// last decoder block and its segmentation head).
    public func callAsFunction(depthwise: DepthwiseConv2D, of input: Tensor, followedBy next: Conv2D) throws -> Tensor {
        let g = try depthwise.geometry(for: input)
        guard next.isUnpaddedPointwise(height: g.outHeight, width: g.outWidth), next.inChannels == outChannels else {
            return try next(self(depthwise: depthwise, of: input))
        }
        var output = Tensor(uninitialized: [g.n, g.outHeight, g.outWidth, next.outChannels])
        try separable(depthwise: depthwise, of: input, residual: nil, then: next, into: &output, channelOffset: 0)
        return output
    }

    private func separable(depthwise: DepthwiseConv2D, of input: Tensor, residual: Tensor?, then next: Conv2D?,
                           into output: inout Tensor, channelOffset: Int) throws {
        try OperatorProfile.measure("depthwise \(depthwise.kernelSize)x\(depthwise.kernelSize)+conv 1x1" + (next == nil ? "" : "+conv 1x1"),
                                    "\(inChannels)->\(outChannels)" + (next.map { "->\($0.outChannels)" } ?? "")
                                        + strideDetail(stride: depthwise.stride, dilation: depthwise.dilation), input) {
            let g = try depthwise.geometry(for: input)
            let (on, oh, ow, oc) = try output.requireNHWC("Conv2D output")
            let written = next?.outChannels ?? outChannels
            guard (on, oh, ow) == (g.n, g.outHeight, g.outWidth), channelOffset >= 0, channelOffset + written <= oc else {
                throw TensorError("Conv2D", "cannot write \([g.n, g.outHeight, g.outWidth, written]) into channels from "
                                  + "\(channelOffset) of \(output.shape)")
            }
            guard isUnpaddedPointwise(height: g.outHeight, width: g.outWidth), depthwise.channels == inChannels else {
                let separate = try self(depthwise(input), residual: residual)
                guard let next else { return try copyChannels(separate, into: &output, channelOffset: channelOffset) }
                return try copyChannels(next(separate), into: &output, channelOffset: channelOffset)
            }
            let rows = g.n * g.outHeight, rowFloats = g.outWidth * inChannels
            // Bands of at most 256 KB, and enough of them for every thread to take a few.
            let bandRows = max(1, min((1 << 16) / max(rowFloats, 1), rows / (4 * Threading.threadCount)))
            let bands = (rows + bandRows - 1) / bandRows
            withKernelPointers(input, residual, &output, channelOffset: channelOffset) { p in
                withOptionalWeights(next) { nextWeights in
                    Threading.parallelFor(bands) { range in
                        let band = UnsafeMutablePointer<Float>.allocate(capacity: bandRows * rowFloats)
                        defer { band.deallocate() }
                        // With `next`, this layer's output for the band, then `next`'s.
                        let middle = nextWeights == nil
                            ? nil : UnsafeMutablePointer<Float>.allocate(capacity: bandRows * g.outWidth * outChannels)
                        defer { middle?.deallocate() }
                        for index in range {
                            let r0 = index * bandRows, r1 = min(rows, r0 + bandRows)
                            depthwise.computeRows(r0..<r1, of: p.input, g, into: band, residual: nil)
                            let pixels = (r1 - r0) * g.outWidth, first = r0 * g.outWidth
                            if let nextWeights, let middle, let next {
                                p.layer.gemm(band, lda: inChannels, rows: pixels, depth: inChannels, columns: outChannels, output: middle,
                                       ldc: outChannels, residual: nil)
                                nextWeights.gemm(middle, lda: outChannels, rows: pixels, depth: outChannels, columns: next.outChannels,
                                                 output: p.output + first * p.ldc, ldc: p.ldc, residual: nil)
                            } else {
                                p.layer.gemm(band, lda: inChannels, rows: pixels, depth: inChannels, columns: outChannels,
                                       output: p.output + first * p.ldc, ldc: p.ldc, residual: p.residual.map { $0 + first * outChannels })
                            }
                        }
                    }
                }
            }
        }
    }

    /// A stem's convolution (a few input channels) computed directly, output row by output row
    /// over the threads: im2col would copy its 9-value window rows one by one
    /// (`eff_conv_small_input`, or `eff_conv_small_input_bf16` with the layer's bf16 panels; the
    /// numbers are those of the GEMM on the im2col matrix). False, with nothing done, where
    /// those kernels do not run (no AVX-512, or bfloat16 without AVX512_BF16: the GEMM path runs).
    private func directSmallInput(_ input: Tensor, pad: Padding, into output: inout Tensor) -> Bool {
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow) = (output.shape[1], output.shape[2])
        let bfloat16 = Precision.current == .bfloat16
        guard bfloat16 ? eff_kernels_use_avx512_bf16() != 0 && kernelSize * kernelSize * c <= 2 * Int(EFF_SMALL_INPUT_MAX_PAIRS)
            : eff_kernels_use_avx512() != 0 else { return false }
        let failed = Atomic<Bool>(false)
        withWeights { weights in
            input.withUnsafeBufferPointer { src in
                output.withUnsafeMutableBufferPointer { out in
                    guard let src = src.baseAddress, let out = out.baseAddress else { return }
                    let q = UncheckedSendable((src, out))
                    Threading.parallelFor(n * oh) { range in
                        let done = if let panels = weights.bf16Weights {
                            eff_conv_small_input_bf16(q.value.0, h, w, c, kernelSize, stride, pad.top, pad.left, oh, ow, panels,
                                                      outChannels, q.value.1, range.lowerBound, range.upperBound, weights.bias,
                                                      weights.activation)
                        } else {
                            eff_conv_small_input(q.value.0, h, w, c, kernelSize, stride, pad.top, pad.left, oh, ow, weights.weights,
                                                 outChannels, q.value.1, range.lowerBound, range.upperBound, weights.bias,
                                                 weights.activation)
                        }
                        if done == 0 { failed.store(true, ordering: .relaxed) }
                    }
                }
            }
        }
        // Out of memory for a band: the GEMM path computes every row again.
        return !failed.load(ordering: .relaxed)
    }

    /// Channels, stride and dilation for `OperatorProfile`.
    func layerDetail(residual: Bool = false) -> String {
        "\(inChannels)->\(outChannels)" + strideDetail(stride: stride, dilation: dilation) + (residual ? " +residual" : "")
    }

    /// Rows per tile: at most `largest`, near a multiple of the 12-row register block, and with
    /// threads at least four tiles per thread where tiles keep 24 rows (196 rows at 2 threads: 9
    /// tiles of 24), so that the threads can even out their shares by taking tiles from each
    /// other (`Threading.parallelFor`).
    static func balancedTile(rows: Int, largest: Int, threads: Int) -> Int {
        var tiles = (rows + largest - 1) / largest
        if threads > 1 { tiles = max(tiles, min(4 * threads, rows / 24)) }
        let even = (rows + max(1, tiles) - 1) / max(1, tiles)
        let rounded = max(12, (even + 6) / 12 * 12)
        return max(1, rounded <= largest ? rounded : even)
    }

    /// Runs `body` with raw pointers to the input, this layer's weights (`LayerWeights`), the
    /// residual and the output (every tensor holds at least one element, so none is null).
    /// The output pointer is that of channel `channelOffset`; output rows are `ldc` apart.
    private func withKernelPointers(_ input: Tensor, _ residual: Tensor?, _ output: inout Tensor, channelOffset: Int = 0,
                                    _ body: (KernelPointers) -> Void) {
        let ldc = output.shape.last ?? outChannels
        withWeights { weights in
            input.withUnsafeBufferPointer { src in
                residual.withUnsafeElementPointer { res in
                    output.withUnsafeMutableBufferPointer { out in
                        guard let src = src.baseAddress, let out = out.baseAddress else { return }
                        body(KernelPointers(input: src, layer: weights, residual: res, output: out + channelOffset, ldc: ldc))
                    }
                }
            }
        }
    }

    /// Runs `body` with this layer's weights and bias ready for `LayerWeights.gemm`, in the
    /// current precision (in bfloat16, the layer's bf16 panels).
    func withWeights<R>(_ body: (LayerWeights) -> R) -> R {
        guard Precision.current == .bfloat16 else { return withWeights(bf16: nil, body) }
        let panels = bf16Panels.panels(of: packedWeight, depth: kernelSize * kernelSize * inChannels, columns: outChannels)
        return panels.withUnsafeBufferPointer { withWeights(bf16: $0.baseAddress, body) }
    }

    private func withWeights<R>(bf16: UnsafePointer<UInt32>?, _ body: (LayerWeights) -> R) -> R {
        packedWeight.withUnsafeBufferPointer { weights in
            bias.withUnsafeBufferPointer { bias in
                // Both hold at least one element.
                body(LayerWeights(weights: weights.baseAddress!, bf16Weights: bf16, bias: bias.baseAddress!,
                                  activation: activation.kernelCode))
            }
        }
    }

    /// Rows `rows` of the im2col matrix (one per output pixel: the k·k·Cin input values under the
    /// window, zeros over padding, in HWIO order to match the weights) into `destination`.
    private func im2col(_ src: UnsafePointer<Float>, batchHeight h: Int, width w: Int, channels c: Int, padding pad: Padding,
                        outHeight oh: Int, outWidth ow: Int, rows: Range<Int>, into destination: UnsafeMutablePointer<Float>) {
        eff_im2col(src, h, w, c, kernelSize, stride, dilation, pad.top, pad.left, oh, ow, rows.lowerBound, rows.upperBound, destination)
    }
}

/// Raw pointers to one convolution's tensors, shared by the threads of its kernel (each writes
/// only its own rows or columns of `output`).
private struct KernelPointers: @unchecked Sendable {
    let input: UnsafePointer<Float>
    let layer: LayerWeights
    let residual: UnsafePointer<Float>?
    let output: UnsafeMutablePointer<Float>
    /// Floats between output rows (the output's channel count; more than the layer's when it
    /// writes a slice of channels).
    let ldc: Int
}

/// Runs `body` with `layer`'s weights (`Conv2D.withWeights`), or with nil when there is no layer.
func withOptionalWeights<R>(_ layer: Conv2D?, _ body: (LayerWeights?) -> R) -> R {
    guard let layer else { return body(nil) }
    return layer.withWeights { body($0) }
}

/// A convolution's weights and bias as the GEMM kernels take them, valid inside
/// `Conv2D.withWeights`; shared by the threads of a kernel.
struct LayerWeights: @unchecked Sendable {
    let weights: UnsafePointer<Float>
    /// The weights as bf16 panels when the layer runs in bfloat16.
    let bf16Weights: UnsafePointer<UInt32>?
    let bias: UnsafePointer<Float>
    let activation: Int32

    /// output[rows x columns] = a[rows x depth] · weights[:, firstColumn..<firstColumn + columns]
    /// with the layer's bias, activation and `residual` (rows `ldc` apart), in the layer's
    /// precision. `firstColumn` is a multiple of 32 (whole panel pairs). `prefetchAfter`: the
    /// columns past these that this thread computes next, fetched meanwhile (float32 only; in
    /// bf16 the split layers go through the `SharedRows` version).
    func gemm(_ a: UnsafePointer<Float>, lda: Int, rows: Int, depth: Int, columns: Int, firstColumn: Int = 0,
              output: UnsafeMutablePointer<Float>, ldc: Int, residual: UnsafePointer<Float>?, prefetchAfter: Int = 0) {
        if let bf16Weights {
            eff_gemm_packed_bf16(a, lda, rows, depth, bf16Weights + firstColumn * ((depth + 1) / 2), columns, output, ldc,
                                 bias + firstColumn, activation, residual, ldc)
        } else {
            eff_gemm_packed(a, lda, rows, depth, weights + firstColumn * depth, columns, output, ldc,
                            bias + firstColumn, activation, residual, ldc, prefetchAfter)
        }
    }

    /// The left operand of several `gemm` calls over column ranges: the rows, and in bf16 the
    /// same rows rounded once (`withSharedRows`).
    struct SharedRows: @unchecked Sendable {
        let floats: UnsafePointer<Float>
        let rounded: UnsafePointer<UInt16>?
    }

    /// Runs `body` with `a` (`rows` x `depth`, contiguous) ready for `gemm` calls that each
    /// compute some columns: in bf16 its rows are rounded here once instead of in every call.
    func withSharedRows(_ a: UnsafePointer<Float>, rows: Int, depth: Int, _ body: (SharedRows) -> Void) {
        guard bf16Weights != nil else { return body(SharedRows(floats: a, rounded: nil)) }
        let rounded = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * eff_bf16_row_width(depth))
        defer { rounded.deallocate() }
        eff_bf16_round_rows(a, depth, rows, depth, rounded)
        body(SharedRows(floats: a, rounded: rounded))
    }

    /// `gemm` on rows from `withSharedRows`, for a slice of the columns; the weights of the
    /// `prefetchAfter` columns after it (the slice this thread most likely takes next) are
    /// fetched meanwhile.
    func gemm(_ a: SharedRows, rows: Int, depth: Int, columns: Int, firstColumn: Int, output: UnsafeMutablePointer<Float>, ldc: Int,
              residual: UnsafePointer<Float>?, prefetchAfter: Int) {
        if let bf16Weights, let rounded = a.rounded {
            eff_gemm_rounded_bf16(rounded, rows, depth, bf16Weights + firstColumn * ((depth + 1) / 2), columns, output, ldc,
                                  bias + firstColumn, activation, residual, ldc, prefetchAfter)
        } else {
            gemm(a.floats, lda: depth, rows: rows, depth: depth, columns: columns, firstColumn: firstColumn, output: output,
                 ldc: ldc, residual: residual, prefetchAfter: prefetchAfter)
        }
    }
}

/// A convolution's packed weights rounded to bf16 pairs (`eff_gemm_pack_bf16`), made once, at the
/// first call in bfloat16, by whichever thread comes first.
final class BF16Panels: Sendable {
    private let storage = Mutex<[UInt32]?>(nil)

    func panels(of packed: Tensor, depth: Int, columns: Int) -> [UInt32] {
        storage.withLock { stored in
            if let stored { return stored }
            var panels = [UInt32](repeating: 0, count: eff_gemm_packed_bf16_size(depth, columns))
            packed.withUnsafeBufferPointer { source in
                panels.withUnsafeMutableBufferPointer { destination in
                    guard let source = source.baseAddress, let destination = destination.baseAddress else { return }
                    eff_gemm_pack_bf16(source, depth, columns, destination)
                }
            }
            stored = panels
            return panels
        }
    }
}
