/// Squeeze-and-excitation: x · sigmoid(expand(act(reduce(mean(x))))) per channel, with
/// `reduce` and `expand` 1x1 convolutions (as in EfficientNet's MBConv blocks).
public struct SqueezeExcite: Sendable {
    public let reduce: Conv2D
    public let expand: Conv2D

    /// `reduce`: [rd, C, 1, 1] (+ bias) followed by `activation`; `expand`: [C, rd, 1, 1] (+ bias)
    /// followed by the sigmoid gate.
    public init(reduceWeight: Tensor, reduceBias: Tensor?, expandWeight: Tensor, expandBias: Tensor?,
                activation: Activation = .silu) throws {
        reduce = try Conv2D(weight: reduceWeight, bias: reduceBias, activation: activation)
        expand = try Conv2D(weight: expandWeight, bias: expandBias, activation: .sigmoid)
        guard reduce.kernelSize == 1, expand.kernelSize == 1,
              expand.inChannels == reduce.outChannels, expand.outChannels == reduce.inChannels else {
            throw TensorError("SqueezeExcite", "reduce \(reduceWeight.shape) and expand \(expandWeight.shape) are not a 1x1 pair C→rd→C")
        }
    }

    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try scaleChannels(input, by: gate(input))
    }

    /// The per-channel gate [N, 1, 1, C] without applying it (to fold it into the next layer).
    /// `pools`: what takes the channel means (nil: the mean of `input` itself).
    public func gate(_ input: Tensor, pools: GlobalPooling? = nil) throws -> Tensor {
        try expand(reduce(pools?.mean(of: input) ?? globalAveragePool(input)))
    }
}
