/// How a convolution or pooling window is padded.
public enum PaddingMode: Sendable, Equatable {
    /// TensorFlow "SAME": output = ceil(input / stride); total padding
    /// max((out - 1) * stride + (kernel - 1) * dilation + 1 - input, 0), the smaller half on the
    /// top/left. Used by TF-ported weights (`tf_*`, lukemelas, effdet `tf_efficientdet_*`).
    case same
    /// PyTorch-native symmetric padding ((stride - 1) + dilation * (kernel - 1)) / 2 on every
    /// side (timm's `get_padding`).
    case symmetric
    /// The same explicit amount on every side (PyTorch's `padding=p`).
    case explicit(Int)
    /// Fixed amounts per side, whatever the input's size (lukemelas' `Conv2dStaticSamePadding`:
    /// SAME padding computed once for a nominal image size).
    case fixed(Padding)
    /// No padding.
    case valid
}

/// Concrete padding amounts on each side.
public struct Padding: Sendable, Equatable {
    public var top, bottom, left, right: Int

    public init(top: Int, bottom: Int, left: Int, right: Int) {
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }

    /// Resolves a mode for an input of `height` x `width`.
    public init(_ mode: PaddingMode, height: Int, width: Int, kernel: Int, stride: Int, dilation: Int = 1) {
        func same(_ size: Int) -> (Int, Int) {
            let out = (size + stride - 1) / stride
            let total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
            return (total / 2, total - total / 2)
        }
        switch mode {
        case .same:
            let (t, b) = same(height), (l, r) = same(width)
            self.init(top: t, bottom: b, left: l, right: r)
        case .symmetric:
            let p = ((stride - 1) + dilation * (kernel - 1)) / 2
            self.init(top: p, bottom: p, left: p, right: p)
        case .explicit(let p):
            self.init(top: p, bottom: p, left: p, right: p)
        case .fixed(let amounts):
            self = amounts
        case .valid:
            self.init(top: 0, bottom: 0, left: 0, right: 0)
        }
    }
}

/// The spatial output size of a sliding window, or an error when the window does not fit.
func windowOutputSize(_ operation: String, input: Int, before: Int, after: Int,
                      kernel: Int, stride: Int, dilation: Int) throws -> Int {
    let span = (kernel - 1) * dilation + 1
    let padded = input + before + after
    guard stride > 0, kernel > 0, dilation > 0, padded >= span else {
        throw TensorError(operation, "a \(kernel)x\(kernel) window (dilation \(dilation)) does not fit an input of \(input) padded by \(before)+\(after)")
    }
    return (padded - span) / stride + 1
}
