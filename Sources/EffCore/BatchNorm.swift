#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Inference-time batch normalisation parameters: y = (x - mean) / sqrt(var + eps) * weight + bias.
/// Never run on its own: it is folded into the preceding convolution when weights are loaded.
public struct BatchNorm: Sendable {
    public var weight: [Float]
    public var bias: [Float]
    public var runningMean: [Float]
    public var runningVar: [Float]
    public var eps: Float

    public init(weight: [Float], bias: [Float], runningMean: [Float], runningVar: [Float], eps: Float) throws {
        let n = weight.count
        guard bias.count == n, runningMean.count == n, runningVar.count == n else {
            throw TensorError("BatchNorm", "weight, bias, running_mean and running_var must have one length, found \(n), \(bias.count), \(runningMean.count), \(runningVar.count)")
        }
        self.weight = weight; self.bias = bias; self.runningMean = runningMean
        self.runningVar = runningVar; self.eps = eps
    }

    /// Number of channels normalised.
    public var channels: Int { weight.count }

    /// Per-channel (scale, shift) with y = x * scale + shift.
    public var scaleAndShift: (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: channels)
        var shift = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            scale[c] = weight[c] / sqrtf(runningVar[c] + eps)
            shift[c] = bias[c] - runningMean[c] * scale[c]
        }
        return (scale, shift)
    }
}

/// Folds `batchNorm` into `weight` and `bias`. The weight's output channel is its last, fastest
/// axis, or — with `panelDepth` — the packed GEMM layout: panels of 16 output channels, each
/// `panelDepth` rows of 16 (columns past the last channel are zero padding and read as the last).
func foldBatchNorm(_ batchNorm: BatchNorm, weight: inout Tensor, bias: inout Tensor, operation: String,
                   panelDepth: Int? = nil) throws {
    let channels = bias.count
    guard batchNorm.channels == channels else {
        throw TensorError(operation, "batch norm has \(batchNorm.channels) channels, the layer has \(channels) outputs")
    }
    let (scale, shift) = batchNorm.scaleAndShift
    weight.withUnsafeMutableBufferPointer { w in
        guard let depth = panelDepth, depth > 0 else {
            for i in 0..<w.count { w[i] *= scale[i % channels] }
            return
        }
        var panelScale = [Float](repeating: 0, count: 16)
        for panel in 0..<(w.count / (depth * 16)) {
            for j in 0..<16 { panelScale[j] = scale[min(panel * 16 + j, channels - 1)] }
            let base = panel * depth * 16
            for row in 0..<depth {
                for j in 0..<16 { w[base + row * 16 + j] *= panelScale[j] }
            }
        }
    }
    bias.withUnsafeMutableBufferPointer { b in
        for c in 0..<channels { b[c] = b[c] * scale[c] + shift[c] }
    }
}
