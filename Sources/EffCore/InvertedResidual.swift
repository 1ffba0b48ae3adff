extension DepthwiseConv2D {
    /// `self(expand(input))`, and with `project`, `project(self(expand(input)), residual:)`: the
    /// expand → depthwise (→ project) chain of an inverted-residual (MBConv) block computed band
    /// by band, so that the expanded tensor — the block's largest — never goes through memory
    /// whole, nor, with `project`, the depthwise output. Each thread takes a run of output rows
    /// and keeps a window of expanded rows that slides down with it (only the first rows of a
    /// run are expanded twice). The numbers are those of the layers applied one by one.
    ///
    /// `expand` and `project` must be unpadded 1x1 convolutions with stride 1 whose channels
    /// match this layer's; other layers, batches of more than one, and pictures too small to
    /// split between the threads without expanding many rows twice are applied one by one.
    public func expanding(_ input: Tensor, by expand: Conv2D, projectingBy project: Conv2D? = nil,
                          residual: Tensor? = nil) throws -> Tensor {
        try expanding(input, by: expand, projectingBy: project, residual: residual, windowFloats: 96 * 1024, haloLimit: 16)
    }

    /// `expanding` with windows of expanded rows of about `windowFloats` floats (at least the rows
    /// one output row needs), fused unless the runs' shared rows exceed 1/`haloLimit` of the
    /// picture's height (0: always fused).
    func expanding(_ input: Tensor, by expand: Conv2D, projectingBy project: Conv2D?, residual: Tensor?,
                   windowFloats: Int, haloLimit: Int) throws -> Tensor {
        let (n, h, w, c) = try input.requireNHWC("DepthwiseConv2D.expanding")
        guard n == 1, expand.isUnpaddedPointwise(height: h, width: w), expand.inChannels == c,
              expand.outChannels == channels else {
            return try unfused(input, expand: expand, project: project, residual: residual)
        }
        let g = try geometry(n: 1, h: h, w: w, c: channels, shape: [1, h, w, channels])
        if let project {
            guard project.isUnpaddedPointwise(height: g.outHeight, width: g.outWidth), project.inChannels == channels else {
                return try unfused(input, expand: expand, project: project, residual: residual)
            }
        }
        // One contiguous run of rows per thread: each run after the first expands the rows it
        // shares with the run above again. Where that is more than 1/16 of the picture (small
        // pictures, wide kernels), the layers run one by one instead.
        let reach = (kernelSize - 1) * dilation + 1
        let runs = min(Threading.threadCount, g.outHeight)
        guard (runs - 1) * max(0, reach - stride) * haloLimit <= h else {
            return try unfused(input, expand: expand, project: project, residual: residual)
        }

        return try OperatorProfile.measure("conv 1x1+depthwise \(kernelSize)x\(kernelSize)" + (project == nil ? "" : "+conv 1x1"),
                                           "\(expand.inChannels)->\(channels)" + (project.map { "->\($0.outChannels)" } ?? "")
                                               + strideDetail(stride: stride, dilation: dilation), input) {
            try fused(input, g, expand: expand, project: project, residual: residual, windowFloats: windowFloats, reach: reach, runs: runs)
        }
    }

    private func fused(_ input: Tensor, _ g: Geometry, expand: Conv2D, project: Conv2D?, residual: Tensor?, windowFloats: Int,
                       reach: Int, runs: Int) throws -> Tensor {
        let (w, c) = (g.w, expand.inChannels)
        let outChannels = project?.outChannels ?? channels
        var output = Tensor(uninitialized: [1, g.outHeight, g.outWidth, outChannels])
        if let residual { try residual.requireShape(output.shape, "DepthwiseConv2D.expanding residual") }

        // Output rows per band: the window of expanded rows they need stays within the budget.
        let expandedRow = w * channels
        let windowBudget = max(reach, windowFloats / max(expandedRow, 1))
        let bandRows = max(1, min(g.outHeight, (windowBudget - reach) / stride + 1))
        let windowRows = (bandRows - 1) * stride + reach

        expand.withWeights { expandWeights in
            withOptionalWeights(project) { projectWeights in
                input.withUnsafeBufferPointer { src in
                    residual.withUnsafeElementPointer { res in
                        output.withUnsafeMutableBufferPointer { out in
                            guard let src = src.baseAddress, let out = out.baseAddress else { return }
                            let p = UncheckedSendable((src, res, out))
                            Threading.parallelFor(runs, minimumPerThread: 1) { range in
                                for run in range {
                                    let rows = (g.outHeight * run / runs)..<(g.outHeight * (run + 1) / runs)
                                    expandedRun(rows, input: p.value.0, inChannels: c, g, expand: expandWeights,
                                                project: projectWeights, outChannels: outChannels, residual: p.value.1,
                                                output: p.value.2, bandRows: bandRows, windowRows: windowRows)
                                }
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    /// Output rows `rows`, band by band, through a window of expanded input rows.
    private func expandedRun(_ rows: Range<Int>, input: UnsafePointer<Float>, inChannels: Int, _ g: Geometry,
                             expand: LayerWeights, project: LayerWeights?, outChannels: Int, residual: UnsafePointer<Float>?,
                             output: UnsafeMutablePointer<Float>, bandRows: Int, windowRows: Int) {
        guard !rows.isEmpty else { return }
        let rowFloats = g.w * channels
        let window = UnsafeMutablePointer<Float>.allocate(capacity: windowRows * rowFloats)
        defer { window.deallocate() }
        let band = project == nil ? nil : UnsafeMutablePointer<Float>.allocate(capacity: bandRows * g.outWidth * channels)
        defer { band?.deallocate() }
        // The window holds expanded rows first..<last.
        var first = 0, last = 0
        for r0 in Swift.stride(from: rows.lowerBound, to: rows.upperBound, by: bandRows) {
            let r1 = min(rows.upperBound, r0 + bandRows)
            let needFirst = max(0, r0 * stride - g.pad.top)
            let needLast = min(g.h, (r1 - 1) * stride - g.pad.top + (kernelSize - 1) * dilation + 1)
            if needFirst >= first && needFirst < last {
                // Keep the rows this band shares with the last one.
                UnsafeMutableRawPointer(window).copyMemory(from: window + (needFirst - first) * rowFloats,
                                                           byteCount: (last - needFirst) * rowFloats * MemoryLayout<Float>.stride)
                first = needFirst
            } else {
                first = needFirst
                last = needFirst
            }
            if needLast > last {
                expand.gemm(input + last * g.w * inChannels, lda: inChannels, rows: (needLast - last) * g.w, depth: inChannels,
                            columns: channels, output: window + (last - first) * rowFloats, ldc: channels, residual: nil)
                last = needLast
            }
            let pixels = (r1 - r0) * g.outWidth
            if let project, let band {
                computeRows(r0..<r1, ofWindow: window, firstRow: first, g, into: band, residual: nil)
                let at = r0 * g.outWidth * outChannels
                project.gemm(band, lda: channels, rows: pixels, depth: channels, columns: outChannels, output: output + at,
                             ldc: outChannels, residual: residual.map { $0 + at })
            } else {
                let at = r0 * g.outWidth * channels
                computeRows(r0..<r1, ofWindow: window, firstRow: first, g, into: output + at, residual: residual.map { $0 + at })
            }
        }
    }

    private func unfused(_ input: Tensor, expand: Conv2D, project: Conv2D?, residual: Tensor?) throws -> Tensor {
        guard let project else {
            return residual == nil ? try expandingChannels(input, by: expand) : try self(expand(input), residual: residual)
        }
        return try project(expandingChannels(input, by: expand), residual: residual)
    }

    /// `self(expand(input))` in one parallel step for pictures with too few pixels to split
    /// them between the threads (the 7x7 stage at 224 px; `expand` alone would split its output
    /// channels): each thread expands a slice of 32 channels for every pixel and applies the
    /// depthwise convolution to that slice at once, while it is in the thread's cache. The
    /// numbers are those of the layers one by one, which run instead for more pixels or unless
    /// `expand` is an unpadded 1x1 convolution with stride 1.
    public func expandingChannels(_ input: Tensor, by expand: Conv2D) throws -> Tensor {
        let (n, h, w, c) = try input.requireNHWC("DepthwiseConv2D.expandingChannels")
        guard n == 1, h * w < 64 * Threading.threadCount, expand.isUnpaddedPointwise(height: h, width: w),
              expand.inChannels == c, expand.outChannels == channels else {
            return try self(expand(input))
        }
        let g = try geometry(n: 1, h: h, w: w, c: channels, shape: [1, h, w, channels])
        return OperatorProfile.measure("conv 1x1+depthwise \(kernelSize)x\(kernelSize)",
                                       "\(c)->\(channels)" + strideDetail(stride: stride, dilation: dilation), input) {
            var expanded = Tensor(uninitialized: [1, h, w, channels])
            var output = Tensor(uninitialized: [1, g.outHeight, g.outWidth, channels])
            expand.withWeights { weights in
                input.withUnsafeBufferPointer { src in
                    expanded.withUnsafeMutableBufferPointer { mid in
                        output.withUnsafeMutableBufferPointer { out in
                            guard let src = src.baseAddress, let mid = mid.baseAddress, let out = out.baseAddress else { return }
                            let p = UncheckedSendable((mid, out))
                            weights.withSharedRows(src, rows: h * w, depth: c) { rows in
                                Threading.parallelFor((channels + 31) / 32) { range in
                                    let c0 = range.lowerBound * 32, c1 = min(channels, range.upperBound * 32)
                                    weights.gemm(rows, rows: h * w, depth: c, columns: c1 - c0, firstColumn: c0,
                                                 output: p.value.0 + c0, ldc: channels, residual: nil,
                                                 prefetchAfter: channels - c1)
                                    computeRows(0..<g.outHeight, of: p.value.0, g, into: p.value.1, residual: nil, channelRange: c0..<c1)
                                }
                            }
                        }
                    }
                }
            }
            return output
        }
    }
}

extension Conv2D {
    /// Whether this is a 1x1 convolution with stride 1 and no padding over `height` x `width`:
    /// a plain matrix product of the pixels.
    func isUnpaddedPointwise(height: Int, width: Int) -> Bool {
        kernelSize == 1 && stride == 1
            && Padding(padding, height: height, width: width, kernel: 1, stride: 1)
            == Padding(.valid, height: height, width: width, kernel: 1, stride: 1)
    }
}
