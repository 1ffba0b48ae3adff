import CKernels
@testable import EffCore
import Foundation
import Testing

/// Fast kernels against their plain reference versions over many random shapes: odd sizes,
/// 1x1 spatial extents, channel counts that are not multiples of the SIMD width.
@Suite(.serialized) struct KernelRandomizedTests {
    static let channelChoices = [1, 3, 8, 15, 16, 17, 33]
    static let tolerance = 1e-5

    @Test(arguments: [1, 2])
    func convolutionMatchesReference(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 101 + UInt64(threads))
        var checked = 0
        for trial in 0..<60 {
            let k = [1, 3, 5].randomElement(using: &rng)!
            let stride = [1, 2].randomElement(using: &rng)!
            let dilation = [1, 1, 2].randomElement(using: &rng)!
            let mode = [PaddingMode.same, .symmetric, .valid, .explicit(1)].randomElement(using: &rng)!
            let activation = Activation.allCases.randomElement(using: &rng)!
            let (h, w) = (Int.random(in: 1...13, using: &rng), Int.random(in: 1...13, using: &rng))
            let cin = Self.channelChoices.randomElement(using: &rng)!, cout = Self.channelChoices.randomElement(using: &rng)!
            let n = trial % 7 == 0 ? 2 : 1
            let x = randomTensor([n, h, w, cin], &rng)
            let weight = randomTensor([cout, cin, k, k], &rng), bias = randomTensor([cout], &rng)
            let conv = try Conv2D(weight: weight, bias: bias, stride: stride, dilation: dilation,
                                  padding: mode, activation: activation)
            let padding = Padding(mode, height: h, width: w, kernel: k, stride: stride, dilation: dilation)
            guard let size = try? conv.outputSize(height: h, width: w) else {
                #expect(throws: TensorError.self) { try conv(x) }
                continue
            }
            let residual = trial % 3 == 0 ? randomTensor([n, size.height, size.width, cout], &rng) : nil
            let fast = try conv(x, residual: residual)
            let reference = referenceConv(x, weight: weight, bias: bias, stride: stride, dilation: dilation,
                                          padding: padding, groups: 1, activation: activation, residual: residual)
            #expect(maxRelativeError(fast, reference) <= Self.tolerance,
                    "conv k\(k) s\(stride) d\(dilation) \(mode) \(activation) \(x.shape)->\(cout)")
            checked += 1
        }
        #expect(checked > 40)
    }

    /// The packed GEMM at every instruction-set level this CPU has (OpenBLAS per panel, AVX2,
    /// AVX-512) against a plain triple loop: row and column counts around the register blocks
    /// (12 x 32, 6 x 16, 16 x 16), rows wider than the matrix (lda, ldc, ldr), every activation,
    /// bias and residual present or not.
    @Test(arguments: [0, 1, 2])
    func packedGemmMatchesReference(instructionSet: Int32) throws {
        var rng = SeededGenerator(seed: 4242 + UInt64(instructionSet))
        for trial in 0..<80 {
            let m = [1, 2, 3, 5, 6, 11, 12, 13, 25, 40].randomElement(using: &rng)!
            let k = [1, 3, 16, 27, 64, 100].randomElement(using: &rng)!
            let n = [1, 7, 15, 16, 17, 31, 32, 33, 48, 80].randomElement(using: &rng)!
            let (lda, ldc, ldr) = (k + trial % 3, n + trial % 2, n + trial % 4)
            let activation = Activation.allCases.randomElement(using: &rng)!
            let a = (0..<(m * lda)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
            let bias: [Float]? = trial % 2 == 0 ? (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } : nil
            let residual: [Float]? = trial % 3 == 0 ? (0..<(m * ldr)).map { _ in Float.random(in: -1...1, using: &rng) } : nil
            var packed = [Float](repeating: .nan, count: eff_gemm_packed_size(k, n))
            eff_gemm_pack_b(b, k, n, &packed)
            var c = [Float](repeating: .nan, count: m * ldc)
            // A hint to fetch weights past n (a layer split by columns) changes no number.
            eff_gemm_packed_isa(instructionSet, a, lda, m, k, packed, n, &c, ldc, bias, activation.kernelCode, residual, ldr,
                                trial % 2 == 0 ? 32 : 0)
            var worst = 0.0
            for i in 0..<m { for j in 0..<n {
                var sum = Double(bias?[j] ?? 0)
                for p in 0..<k { sum += Double(a[i * lda + p]) * Double(b[p * n + j]) }
                let expected = referenceActivation(sum, activation) + Double(residual?[i * ldr + j] ?? 0)
                worst = max(worst, abs(Double(c[i * ldc + j]) - expected) / max(1, abs(expected)))
            } }
            #expect(worst <= Self.tolerance, "gemm isa \(instructionSet) m\(m) k\(k) n\(n) \(activation)")
            // Padding columns of each output row are not touched.
            for i in 0..<m where ldc > n { #expect(c[i * ldc + n].isNaN, "gemm wrote past column \(n)") }
        }
    }

    /// Convolutions with a few input channels (stems) are computed directly, without im2col,
    /// in blocks of 12 output pixels: rows wide enough for whole blocks, edges and padding on
    /// every side, the 3-channel stride-2 3x3 specialisation among them.
    @Test(arguments: [1, 2])
    func smallInputConvolutionMatchesReference(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 606 + UInt64(threads))
        for trial in 0..<24 {
            let cin = trial % 3 == 0 ? 3 : Int.random(in: 1...4, using: &rng)
            let k = trial % 4 == 3 ? 5 : 3, stride = trial % 2 == 0 ? 2 : 1
            let mode = [PaddingMode.same, .symmetric, .valid, .explicit(1)][trial % 4]
            let (h, w) = (Int.random(in: 5...40, using: &rng), Int.random(in: 5...70, using: &rng))
            let cout = [8, 16, 32, 40].randomElement(using: &rng)!, n = trial % 5 == 0 ? 2 : 1
            let activation = Activation.allCases.randomElement(using: &rng)!
            let x = randomTensor([n, h, w, cin], &rng)
            let weight = randomTensor([cout, cin, k, k], &rng), bias = randomTensor([cout], &rng)
            let conv = try Conv2D(weight: weight, bias: bias, stride: stride, padding: mode, activation: activation)
            let padding = Padding(mode, height: h, width: w, kernel: k, stride: stride)
            let reference = referenceConv(x, weight: weight, bias: bias, stride: stride, dilation: 1, padding: padding,
                                          groups: 1, activation: activation, residual: nil)
            #expect(maxRelativeError(try conv(x), reference) <= Self.tolerance,
                    "small-input conv k\(k) s\(stride) \(mode) \(activation) \(x.shape)->\(cout)")
        }
    }

    /// The direct small-input kernels (float32 and bf16, band by band on rows copied with their
    /// padding) give exactly the numbers of the GEMM on the im2col matrix, which they replace:
    /// the same products summed in the same order (bf16: the same pairs of taps), at any
    /// padding, batch, partial pixel or channel block and thread split.
    @Test(arguments: [1, 2])
    func smallInputConvolutionIsTheGEMMOnIm2col(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 4242 + UInt64(threads))
        let precisions: [Precision] = eff_kernels_use_avx512_bf16() != 0 ? [.float32, .bfloat16] : [.float32]
        guard eff_kernels_use_avx512() != 0 else { return }
        for trial in 0..<32 {
            let cin = trial % 3 == 0 ? 3 : Int.random(in: 1...4, using: &rng)
            let k = trial % 4 == 3 ? 5 : 3, stride = trial % 2 == 0 ? 2 : 1
            let mode = [PaddingMode.same, .symmetric, .valid, .explicit(2)][trial % 4]
            let (h, w) = (Int.random(in: 5...45, using: &rng), Int.random(in: 5...70, using: &rng))
            let cout = [8, 16, 32, 40, 64].randomElement(using: &rng)!, n = trial % 5 == 0 ? 2 : 1
            let activation = Activation.allCases.randomElement(using: &rng)!
            let x = randomTensor([n, h, w, cin], &rng)
            let conv = try Conv2D(weight: randomTensor([cout, cin, k, k], &rng), bias: randomTensor([cout], &rng), stride: stride,
                                  padding: mode, activation: activation)
            let pad = Padding(mode, height: h, width: w, kernel: k, stride: stride)
            let (oh, ow) = try conv.outputSize(height: h, width: w)
            let depth = k * k * cin
            var columns = [Float](repeating: 0, count: n * oh * ow * depth)
            x.withUnsafeBufferPointer { src in
                for image in 0..<n {
                    eff_im2col(src.baseAddress! + image * h * w * cin, h, w, cin, k, stride, 1, pad.top, pad.left, oh, ow, 0,
                               oh * ow, &columns[image * oh * ow * depth])
                }
            }
            let weights = conv.packedWeight.withUnsafeBufferPointer { Array($0) }, bias = conv.bias.withUnsafeBufferPointer { Array($0) }
            for precision in precisions {
                var expected = [Float](repeating: .nan, count: n * oh * ow * cout)
                if precision == .bfloat16 {
                    var panels = [UInt32](repeating: 0, count: eff_gemm_packed_bf16_size(depth, cout))
                    eff_gemm_pack_bf16(weights, depth, cout, &panels)
                    eff_gemm_packed_bf16(columns, depth, n * oh * ow, depth, panels, cout, &expected, cout, bias,
                                         activation.kernelCode, nil, 0)
                } else {
                    eff_gemm_packed(columns, depth, n * oh * ow, depth, weights, cout, &expected, cout, bias, activation.kernelCode, nil, 0, 0)
                }
                let direct = try Precision.withPrecision(precision) { try conv(x) }
                let same = direct.withUnsafeBufferPointer { Array($0) == expected }
                #expect(same, "\(precision) small-input conv k\(k) s\(stride) \(mode) \(activation) \(x.shape)->\(cout)")
            }
        }
    }

    /// A 1x1 convolution of a depthwise convolution computed band by band gives the numbers of
    /// the two applied one after the other: several bands, wide rows, strides, dilation,
    /// residual, one and two threads.
    @Test(arguments: [1, 2])
    func separableConvolutionMatchesTwoSteps(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 77 + UInt64(threads))
        for trial in 0..<24 {
            let c = [8, 17, 64, 304].randomElement(using: &rng)!, cout = [5, 16, 33, 64].randomElement(using: &rng)!
            let (h, w) = (Int.random(in: 1...40, using: &rng), Int.random(in: 1...70, using: &rng))
            let stride = trial % 4 == 3 ? 2 : 1, dilation = trial % 5 == 4 ? 2 : 1
            let depthwise = try DepthwiseConv2D(weight: randomTensor([c, 1, 3, 3], &rng), bias: randomTensor([c], &rng),
                                                stride: stride, dilation: dilation, padding: .same,
                                                activation: trial % 2 == 0 ? .relu6 : .identity)
            let pointwise = try Conv2D(weight: randomTensor([cout, c, 1, 1], &rng), bias: randomTensor([cout], &rng),
                                       activation: Activation.allCases.randomElement(using: &rng)!)
            let x = randomTensor([trial % 6 == 0 ? 2 : 1, h, w, c], &rng)
            let twoSteps = try depthwise(x)
            let residual = trial % 3 == 0 ? randomTensor([twoSteps.shape[0], twoSteps.shape[1], twoSteps.shape[2], cout], &rng) : nil
            let expected = try pointwise(twoSteps, residual: residual)
            let fused = try pointwise(depthwise: depthwise, of: x, residual: residual)
            #expect(maxRelativeError(fused, expected) <= Self.tolerance, "separable \(x.shape) c\(c)->\(cout) s\(stride) d\(dilation)")
            // Written into a slice of a wider tensor's channels, and followed band by band by a
            // second 1x1 convolution: the numbers of the separate steps.
            let plain = try pointwise(twoSteps)
            var joined = Tensor(repeating: -7, shape: [plain.shape[0], plain.shape[1], plain.shape[2], cout + 3])
            try pointwise(depthwise: depthwise, of: x, into: &joined, channelOffset: 2)
            #expect(joined.scalars.enumerated().allSatisfy { i, value in
                let channel = i % (cout + 3)
                return channel < 2 || channel >= cout + 2 ? value == -7 : value == plain.scalars[i / (cout + 3) * cout + channel - 2]
            }, "separable into channels from 2 of \(joined.shape)")
            let next = try Conv2D(weight: randomTensor([7, cout, 1, 1], &rng), bias: randomTensor([7], &rng))
            #expect(try pointwise(depthwise: depthwise, of: x, followedBy: next).scalars == next(plain).scalars,
                    "separable followed by 1x1 \(x.shape)")
        }
    }

    /// An inverted-residual block's expand → depthwise (→ project) computed band by band through
    /// a sliding window of expanded rows gives exactly the numbers of the layers one by one:
    /// windows from one output row's worth to the whole picture, strides, dilation, kernels 3
    /// and 5, residual, one and two threads.
    @Test(arguments: [1, 2])
    func expandedDepthwiseMatchesLayerByLayer(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 4242 + UInt64(threads))
        for trial in 0..<32 {
            let cin = [3, 16, 24].randomElement(using: &rng)!, mid = [8, 17, 48, 96].randomElement(using: &rng)!
            let cout = [5, 16, 40].randomElement(using: &rng)!
            let (h, w) = (Int.random(in: 1...37, using: &rng), Int.random(in: 1...45, using: &rng))
            let k = trial % 2 == 0 ? 3 : 5, stride = trial % 3 == 2 ? 2 : 1, dilation = trial % 7 == 6 ? 2 : 1
            let expand = try Conv2D(weight: randomTensor([mid, cin, 1, 1], &rng), bias: randomTensor([mid], &rng), activation: .silu)
            let depthwise = try DepthwiseConv2D(weight: randomTensor([mid, 1, k, k], &rng), bias: randomTensor([mid], &rng),
                                                stride: stride, dilation: dilation, padding: trial % 4 == 1 ? .symmetric : .same,
                                                activation: trial % 5 == 0 ? .relu6 : .silu)
            let project = try Conv2D(weight: randomTensor([cout, mid, 1, 1], &rng), bias: randomTensor([cout], &rng))
            let x = randomTensor([1, h, w, cin], &rng)
            let expected = try depthwise(expand(x))
            let projected = try project(expected)
            let residual = trial % 3 == 0 ? randomTensor(projected.shape, &rng) : nil
            let expectedProjected = try project(expected, residual: residual)
            for windowFloats in [1, w * mid * (k + 3), 1 << 20] {
                let fused = try depthwise.expanding(x, by: expand, projectingBy: nil, residual: nil, windowFloats: windowFloats,
                                                   haloLimit: 0)
                #expect(fused.shape == expected.shape && fused.scalars == expected.scalars,
                        "expand+depthwise \(x.shape) \(cin)->\(mid) k\(k) s\(stride) d\(dilation) window \(windowFloats)")
                let full = try depthwise.expanding(x, by: expand, projectingBy: project, residual: residual,
                                                  windowFloats: windowFloats, haloLimit: 0)
                #expect(full.shape == expectedProjected.shape && full.scalars == expectedProjected.scalars,
                        "expand+depthwise+project \(x.shape) \(cin)->\(mid)->\(cout) k\(k) s\(stride) d\(dilation) window \(windowFloats)")
            }
        }
        // A batch of two takes the layer-by-layer path with the same numbers.
        let expand = try Conv2D(weight: randomTensor([8, 4, 1, 1], &rng), bias: nil, activation: .relu)
        let depthwise = try DepthwiseConv2D(weight: randomTensor([8, 1, 3, 3], &rng), bias: nil, padding: .same)
        let batch = randomTensor([2, 9, 7, 4], &rng)
        #expect(try depthwise.expanding(batch, by: expand).scalars == depthwise(expand(batch)).scalars)
    }

    /// Over few pixels (the 7x7 stage) an inverted-residual block's expand → depthwise runs as
    /// one step of 32-channel slices (`expandingChannels`), with exactly the numbers of the
    /// layers one by one, in float32 and bfloat16, one and two threads; with more pixels the
    /// layers run one by one.
    @Test(arguments: [1, 2])
    func channelSlicedExpansionMatchesLayerByLayer(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 5151 + UInt64(threads))
        for trial in 0..<16 {
            let cin = [16, 40, 192].randomElement(using: &rng)!, mid = [48, 72, 88, 200].randomElement(using: &rng)!
            let (h, w) = [(7, 7), (1, 1), (5, 9), (3, 20), (12, 12)][trial % 5]
            let k = trial % 2 == 0 ? 3 : 5, stride = trial % 3 == 2 ? 2 : 1
            let expand = try Conv2D(weight: randomTensor([mid, cin, 1, 1], &rng), bias: randomTensor([mid], &rng), activation: .relu6)
            let depthwise = try DepthwiseConv2D(weight: randomTensor([mid, 1, k, k], &rng), bias: randomTensor([mid], &rng),
                                                stride: stride, padding: .same, activation: .silu)
            let project = try Conv2D(weight: randomTensor([cin, mid, 1, 1], &rng), bias: randomTensor([cin], &rng))
            let x = randomTensor([1, h, w, cin], &rng)
            for precision in Precision.allCases {
                try Precision.withPrecision(precision) {
                    let expected = try depthwise(expand(x))
                    let sliced = try depthwise.expandingChannels(x, by: expand)
                    #expect(sliced.shape == expected.shape && sliced.scalars == expected.scalars,
                            "\(precision) \(x.shape) \(cin)->\(mid) k\(k) s\(stride)")
                    // The whole block on pictures this small: the projection gets the residual.
                    let residual = randomTensor([1, expected.shape[1], expected.shape[2], cin], &rng)
                    let block = try depthwise.expanding(x, by: expand, projectingBy: project, residual: residual)
                    #expect(block.scalars == (try project(expected, residual: residual)).scalars, "\(precision) block \(x.shape)")
                }
            }
        }
    }

    /// 1x1 convolutions over few pixels with many output channels take the channel-split path.
    @Test(arguments: [1, 2])
    func pointwiseOverFewPixelsMatchesReference(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 909 + UInt64(threads))
        for cout in [64, 80, 130] { for (h, w) in [(1, 1), (3, 2), (7, 7), (5, 9)] {
            let cin = [17, 40, 96].randomElement(using: &rng)!
            let activation = Activation.allCases.randomElement(using: &rng)!
            let x = randomTensor([1, h, w, cin], &rng)
            let weight = randomTensor([cout, cin, 1, 1], &rng), bias = randomTensor([cout], &rng)
            let residual = cout == 80 ? randomTensor([1, h, w, cout], &rng) : nil
            let fast = try Conv2D(weight: weight, bias: bias, activation: activation)(x, residual: residual)
            let reference = referenceConv(x, weight: weight, bias: bias, stride: 1, dilation: 1,
                                          padding: Padding(.valid, height: h, width: w, kernel: 1, stride: 1), groups: 1,
                                          activation: activation, residual: residual)
            #expect(maxRelativeError(fast, reference) <= Self.tolerance, "1x1 \(cin)->\(cout) over \(h)x\(w) \(activation)")
            // The squeeze-and-excitation fold: scaling weights equals scaling the input.
            let gate = randomTensor([1, 1, 1, cin], &rng, range: 0...1)
            let folded = try Conv2D(weight: weight, bias: bias, activation: activation)(x, scalingInputChannelsBy: gate)
            let scaled = try Conv2D(weight: weight, bias: bias, activation: activation)(scaleChannels(x, by: gate))
            #expect(maxRelativeError(folded, scaled) <= Self.tolerance)
        } }
    }

    @Test(arguments: [1, 2])
    func depthwiseMatchesReference(threads: Int) throws {
        Threading.setThreadCount(threads)
        defer { Threading.setThreadCount(nil) }
        var rng = SeededGenerator(seed: 202 + UInt64(threads))
        var checked = 0
        for k in [3, 5] { for stride in [1, 2] { for dilation in [1, 2, 4] {
            // Any width, and multiples of 8 on rows wide enough for several register blocks plus
            // edges (the AVX2 path's blocks of 4 columns; the AVX-512 path's 8 columns by 16
            // channels, the last 16 masked when the count is no multiple of 16, and its runs of
            // 3x3 blocks inside wide rows, with and without a residual).
            for (mode, wide) in [(PaddingMode.same, false), (.symmetric, false), (.same, true), (.symmetric, true)] {
                let activation = Activation.allCases.randomElement(using: &rng)!
                let (h, w) = (Int.random(in: 1...19, using: &rng), Int.random(in: wide ? 12...70 : 1...19, using: &rng))
                let c = wide ? [8, 16, 24, 40, 48].randomElement(using: &rng)! : Self.channelChoices.randomElement(using: &rng)!
                let x = randomTensor([1, h, w, c], &rng)
                let weight = randomTensor([c, 1, k, k], &rng), bias = randomTensor([c], &rng)
                let conv = try DepthwiseConv2D(weight: weight, bias: bias, stride: stride, dilation: dilation,
                                               padding: mode, activation: activation)
                let padding = Padding(mode, height: h, width: w, kernel: k, stride: stride, dilation: dilation)
                let outH = (h + padding.top + padding.bottom - dilation * (k - 1) - 1) / stride + 1
                let outW = (w + padding.left + padding.right - dilation * (k - 1) - 1) / stride + 1
                let residual = dilation == 2 || (wide && mode == .same) ? randomTensor([1, outH, outW, c], &rng) : nil
                let fast = try conv(x, residual: residual)
                let reference = referenceConv(x, weight: weight, bias: bias, stride: stride, dilation: dilation,
                                              padding: padding, groups: c, activation: activation, residual: residual)
                #expect(maxRelativeError(fast, reference) <= Self.tolerance,
                        "depthwise k\(k) s\(stride) d\(dilation) \(mode) \(activation) \(x.shape)")
                checked += 1
            }
        } } }
        #expect(checked == 48)
    }

    /// Depthwise layers with few rows and many channels (7x7 and 14x14 stages) are split over the
    /// threads by 16-channel slices: every instruction-set level computes any slice of channels
    /// exactly as the whole row does, and the layer at 1 and 2 threads matches the reference —
    /// channel counts no multiple of 16 (the masked last slice) or of 8 (the AVX2 path's plain
    /// fallback), with residual.
    @Test(arguments: [0, 1, 2])
    func depthwiseChannelSlicesMatchWholeRows(instructionSet: Int32) throws {
        var rng = SeededGenerator(seed: 515 + UInt64(instructionSet))
        for trial in 0..<12 {
            let (k, stride, dilation) = ([3, 5][trial % 2], [1, 2][trial / 2 % 2], trial % 3 == 2 ? 2 : 1)
            let c = [64, 72, 88, 101, 144, 200].randomElement(using: &rng)!
            let (h, w) = (Int.random(in: 1...15, using: &rng), Int.random(in: 1...21, using: &rng))
            let activation = Activation.allCases.randomElement(using: &rng)!
            let weight = randomTensor([c, 1, k, k], &rng), bias = randomTensor([c], &rng)
            let conv = try DepthwiseConv2D(weight: weight, bias: bias, stride: stride, dilation: dilation, padding: .same,
                                           activation: activation)
            let x = randomTensor([1, h, w, c], &rng)
            let g = try conv.geometry(for: x)
            let residual = trial % 2 == 0 ? randomTensor([1, g.outHeight, g.outWidth, c], &rng) : nil
            let count = g.outHeight * g.outWidth * c
            // Slice bounds: multiples of 16, at random, plus the end.
            var bounds = [0] + (1..<((c + 15) / 16)).filter { _ in Bool.random(using: &rng) }.map { $0 * 16 } + [c]
            bounds = Array(Set(bounds)).sorted()
            var whole = [Float](repeating: .nan, count: count)
            var slices: [(Int, Int, [Float])] = []
            x.withUnsafeBufferPointer { input in
                conv.packedWeight.withUnsafeBufferPointer { packed in
                    conv.bias.withUnsafeBufferPointer { layerBias in
                        residual.withUnsafeElementPointer { res in
                            let run = { (out: UnsafeMutablePointer<Float>, c0: Int, c1: Int) in
                                eff_depthwise_isa(instructionSet, input.baseAddress, h, w, c, packed.baseAddress, k, stride, dilation,
                                                  g.pad.top, g.pad.left, g.outHeight, g.outWidth, out, 0, g.outHeight, c0, c1,
                                                  layerBias.baseAddress, activation.kernelCode, res)
                            }
                            run(&whole, 0, c)
                            for (c0, c1) in zip(bounds, bounds.dropFirst()) {
                                var slice = [Float](repeating: .nan, count: count)
                                run(&slice, c0, c1)
                                slices.append((c0, c1, slice))
                            }
                        }
                    }
                }
            }
            // Each slice writes its channels, exactly as the whole row does, and nothing else.
            for (c0, c1, slice) in slices {
                let inside = slice.indices.allSatisfy { i in (c0..<c1).contains(i % c) ? slice[i] == whole[i] : slice[i].isNaN }
                #expect(inside, "isa \(instructionSet) k\(k) s\(stride) d\(dilation) c\(c) \(h)x\(w) slice \(c0)..<\(c1)")
            }
            let reference = referenceConv(x, weight: weight, bias: bias, stride: stride, dilation: dilation, padding: g.pad, groups: c,
                                          activation: activation, residual: residual)
            #expect(maxRelativeError(try Tensor(shape: reference.shape, values: whole), reference) <= Self.tolerance)
            for threads in [1, 2] {
                Threading.setThreadCount(threads)
                defer { Threading.setThreadCount(nil) }
                #expect(maxRelativeError(try conv(x, residual: residual), reference) <= Self.tolerance, "layer at \(threads) threads")
            }
        }
    }

    @Test func batchNormFoldingMatchesConvThenNorm() throws {
        var rng = SeededGenerator(seed: 303)
        for depthwise in [false, true] {
            let c = 17, (h, w) = (6, 5)
            let x = randomTensor([1, h, w, c], &rng)
            let weight = randomTensor(depthwise ? [c, 1, 3, 3] : [c, c, 3, 3], &rng)
            let bias = randomTensor([c], &rng)
            let bn = try BatchNorm(weight: randomTensor([c], &rng, range: 0.5...1.5).scalars,
                                   bias: randomTensor([c], &rng).scalars,
                                   runningMean: randomTensor([c], &rng).scalars,
                                   runningVar: randomTensor([c], &rng, range: 0.2...2).scalars, eps: 1e-3)
            let padding = Padding(.same, height: h, width: w, kernel: 3, stride: 1)
            var expected = referenceConv(x, weight: weight, bias: bias, stride: 1, dilation: 1, padding: padding,
                                         groups: depthwise ? c : 1)
            for y in 0..<h { for xx in 0..<w { for ch in 0..<c {
                let v = Double(expected[0, y, xx, ch])
                let normed = (v - Double(bn.runningMean[ch])) / (Double(bn.runningVar[ch]) + 1e-3).squareRoot()
                expected[0, y, xx, ch] = Float(normed * Double(bn.weight[ch]) + Double(bn.bias[ch]))
            } } }
            let fast = depthwise
                ? try DepthwiseConv2D(weight: weight, bias: bias, padding: .same).folding(bn)(x)
                : try Conv2D(weight: weight, bias: bias, padding: .same).folding(bn)(x)
            #expect(maxRelativeError(fast, expected) <= Self.tolerance, "depthwise=\(depthwise)")
        }
    }

    @Test func poolingMatchesReference() throws {
        var rng = SeededGenerator(seed: 404)
        for _ in 0..<40 {
            let k = [2, 3, 5].randomElement(using: &rng)!, stride = [1, 2, 3].randomElement(using: &rng)!
            let mode = [PaddingMode.same, .valid, .explicit(k / 2)].randomElement(using: &rng)!
            let include = Bool.random(using: &rng)
            let (h, w) = (Int.random(in: k...15, using: &rng), Int.random(in: k...15, using: &rng))
            let x = randomTensor([Int.random(in: 1...2, using: &rng), h, w, Self.channelChoices.randomElement(using: &rng)!], &rng)
            let padding = Padding(mode, height: h, width: w, kernel: k, stride: stride)
            let maxFast = try maxPool2D(x, kernel: k, stride: stride, padding: mode)
            let avgFast = try avgPool2D(x, kernel: k, stride: stride, padding: mode, countIncludePad: include)
            #expect(maxRelativeError(maxFast, referencePool(x, kernel: k, stride: stride, padding: padding, isMax: true, countIncludePad: true)) <= Self.tolerance)
            #expect(maxRelativeError(avgFast, referencePool(x, kernel: k, stride: stride, padding: padding, isMax: false, countIncludePad: include)) <= Self.tolerance,
                    "avg k\(k) s\(stride) \(mode) include=\(include) \(x.shape)")
        }
        let x = randomTensor([2, 9, 7, 33], &rng)
        let gap = try globalAveragePool(x)
        let reference = referencePool(x, kernel: 1, stride: 1, padding: Padding(.valid, height: 9, width: 7, kernel: 1, stride: 1), isMax: false, countIncludePad: true)
        for b in 0..<2 { for c in 0..<33 {
            var mean = 0.0
            for y in 0..<9 { for xx in 0..<7 { mean += Double(reference[b, y, xx, c]) } }
            #expect(abs(Double(gap[b, 0, 0, c]) - mean / 63) <= Self.tolerance)
        } }
    }

    @Test func resizeMatchesReference() throws {
        var rng = SeededGenerator(seed: 505)
        for _ in 0..<40 {
            let (h, w) = (Int.random(in: 1...12, using: &rng), Int.random(in: 1...12, using: &rng))
            let (oh, ow) = (Int.random(in: 1...30, using: &rng), Int.random(in: 1...30, using: &rng))
            let x = randomTensor([1, h, w, Self.channelChoices.randomElement(using: &rng)!], &rng)
            #expect(maxRelativeError(try resizeNearest(x, height: oh, width: ow), referenceResizeNearest(x, oh, ow)) == 0)
            for align in [true, false] {
                #expect(maxRelativeError(try resizeBilinear(x, height: oh, width: ow, alignCorners: align),
                                         referenceResizeBilinear(x, oh, ow, alignCorners: align)) <= Self.tolerance,
                        "bilinear align=\(align) \(x.shape)->\(oh)x\(ow)")
            }
        }
    }

    @Test func elementwiseMatchesReference() throws {
        var rng = SeededGenerator(seed: 606)
        let shape = [1, 5, 7, 17]
        let a = randomTensor(shape, &rng), b = randomTensor(shape, &rng), c = randomTensor(shape, &rng)
        let sum = try weightedSum([a, b, c], weights: [0.5, -2, 0.25])
        let added = try add(a, b)
        for i in 0..<a.count {
            let (x, y, z) = (Double(a.scalars[i]), Double(b.scalars[i]), Double(c.scalars[i]))
            #expect(abs(Double(sum.scalars[i]) - (0.5 * x - 2 * y + 0.25 * z)) <= Self.tolerance)
            #expect(abs(Double(added.scalars[i]) - (x + y)) <= Self.tolerance)
        }
        let joined = try concatChannels([a, randomTensor([1, 5, 7, 3], &rng), b])
        #expect(joined.shape == [1, 5, 7, 37])
        #expect(joined[0, 4, 6, 0] == a[0, 4, 6, 0] && joined[0, 4, 6, 20] == b[0, 4, 6, 0] && joined[0, 2, 3, 36] == b[0, 2, 3, 16])
        for activation in Activation.allCases {
            let fast = activate(a, activation)
            for i in 0..<a.count {
                #expect(abs(Double(fast.scalars[i]) - referenceActivation(Double(a.scalars[i]), activation)) <= Self.tolerance)
            }
        }
        let gate = randomTensor([1, 1, 1, 17], &rng)
        let scaled = try scaleChannels(a, by: gate)
        #expect(scaled[0, 3, 2, 16] == a[0, 3, 2, 16] * gate[0, 0, 0, 16])
    }

    @Test func softmaxAndArgmax() throws {
        var rng = SeededGenerator(seed: 707)
        let x = randomTensor([1, 4, 3, 21], &rng, range: -20...20)
        let probabilities = try softmaxChannels(x)
        let labels = try argmaxChannels(x)
        for pixel in 0..<12 {
            let row = Array(x.scalars[(pixel * 21)..<(pixel * 21 + 21)]).map(Double.init)
            let peak = row.max()!
            let total = row.map { exp($0 - peak) }.reduce(0, +)
            for i in 0..<21 {
                #expect(abs(Double(probabilities.scalars[pixel * 21 + i]) - exp(row[i] - peak) / total) <= Self.tolerance)
            }
            #expect(Int(labels[pixel]) == row.firstIndex(of: peak))
        }
    }

    @Test func shapeErrorsAreThrownNotTrapped() throws {
        let conv = try Conv2D(weight: Tensor(zeros: [4, 3, 3, 3]))
        #expect(throws: TensorError.self) { try conv(Tensor(zeros: [1, 8, 8, 5])) }
        #expect(throws: TensorError.self) { try conv(Tensor(zeros: [8, 8, 3])) }
        #expect(throws: TensorError.self) { try conv(Tensor(zeros: [1, 2, 2, 3])) }  // 3x3 valid window on 2x2
        #expect(throws: TensorError.self) { try Conv2D(weight: Tensor(zeros: [4, 3, 3])) }
        #expect(throws: TensorError.self) { try Tensor(shape: [2, 3], values: [1, 2]) }
        #expect(throws: TensorError.self) { try Tensor(zeros: [6]).reshaped([4]) }
        #expect(throws: TensorError.self) { try add(Tensor(zeros: [1, 2, 2, 1]), Tensor(zeros: [1, 2, 2, 2])) }
        #expect(throws: TensorError.self) { try concatChannels([Tensor(zeros: [1, 2, 2, 1]), Tensor(zeros: [1, 3, 2, 1])]) }
        #expect(throws: TensorError.self) {
            try conv(Tensor(zeros: [1, 5, 5, 3]), residual: Tensor(zeros: [1, 5, 5, 4]))
        }
    }

    @Test func tensorStorageIsAlignedAndCopyOnWrite() throws {
        let a = try Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        a.withUnsafeBufferPointer { #expect(Int(bitPattern: $0.baseAddress) % 64 == 0) }
        var b = a
        b[0, 0] = 9
        #expect(a[0, 0] == 1 && b[0, 0] == 9)
        let view = try a.reshaped([4])
        #expect(view.shape == [4] && view.scalars == [1, 2, 3, 4])
    }
}
