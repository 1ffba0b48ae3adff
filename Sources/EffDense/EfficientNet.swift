import EffCore
import EffWeights

/// An EfficientNet with its weights bound: the backbone shared by classification, detection and
/// segmentation. `features` gives the multi-scale features at strides 2, 4, 8, 16, 32 (timm's
/// `features_only=True`); `logits` runs the head and classifier too.
public struct EfficientNet: Sendable {
    public let architecture: EfficientNetArchitecture
    /// 32, 16 or 8: later stages are dilated instead of strided past it.
    public let outputStride: Int
    public let blockSpecs: [EfficientNetArchitecture.Block]
    /// Whether the stem's output is the first feature (segmentation_models_pytorch's encoders).
    public let stemIsFeature: Bool
    let stem: Conv2D
    let blocks: [MBConvBlock]
    let head: Conv2D?
    let classifier: Conv2D?

    /// Channels of the features, strides 2 to 32 (timm's `feature_info.channels()`).
    public var featureChannels: [Int] {
        (stemIsFeature ? [architecture.scaledStemChannels] : []) + blockSpecs.filter(\.isFeature).map(\.outChannels)
    }
    /// Nominal strides of the five features (with dilation, the later ones stay at `outputStride`).
    public static let featureStrides = [2, 4, 8, 16, 32]

    /// Builds the network and binds its weights through `binder` under `keys`. With
    /// `includeClassifier` false (a backbone for another head) the head convolution and the
    /// classifier are neither built nor read. `blocks` overrides the resolved blocks (another
    /// library's dilation and feature choices); `stemIsFeature` makes the stem output the first
    /// feature.
    public init(architecture: EfficientNetArchitecture, outputStride: Int = 32, blocks resolved: [EfficientNetArchitecture.Block]? = nil,
                stemIsFeature: Bool = false, weights binder: WeightBinder, keys: EfficientNetKeys,
                includeClassifier: Bool = true) throws {
        self.architecture = architecture
        self.outputStride = outputStride
        self.stemIsFeature = stemIsFeature
        blockSpecs = try resolved ?? architecture.blocks(outputStride: outputStride)
        let padding = architecture.flavour.padding, eps = architecture.batchNormEps ?? architecture.flavour.batchNormEps
        let activation = architecture.activation
        let layer = LayerBinder(binder: binder, padding: padding, eps: eps)

        // lukemelas' static padding: the nominal size before each strided layer decides its padding.
        var nominalSize = architecture.staticPaddingImageSize
        func staticPadding(kernel: Int, stride: Int, dilation: Int) -> PaddingMode? {
            guard let size = nominalSize else { return nil }
            defer { nominalSize = (size + stride - 1) / stride }
            // smp's replace_strides_with_dilation drops the static padding of dilated blocks.
            if dilation > 1 { return .explicit(kernel / 2 * dilation) }
            return .fixed(Padding(.same, height: size, width: size, kernel: kernel, stride: stride))
        }
        stem = try layer.conv(keys.stem.conv, bn: keys.stem.bn, in: 3, out: architecture.scaledStemChannels,
                              kernel: 3, stride: 2, activation: activation, padding: staticPadding(kernel: 3, stride: 2, dilation: 1))
        blocks = try blockSpecs.enumerated().map { flat, spec in
            func names(_ part: MBConvPart) -> (conv: String, bn: String?) { keys.block(spec, flatIndex: flat, part) }
            let expand = spec.kind == .invertedResidual
                ? try layer.conv(names(.expand).conv, bn: names(.expand).bn, in: spec.inChannels, out: spec.midChannels,
                                 kernel: 1, activation: activation)
                : nil
            let depthwise = try layer.depthwise(names(.depthwise).conv, bn: names(.depthwise).bn, channels: spec.midChannels,
                                                kernel: spec.kernel, stride: spec.stride, dilation: spec.dilation, activation: activation,
                                                padding: staticPadding(kernel: spec.kernel, stride: spec.stride, dilation: spec.dilation))
            var se: SqueezeExcite?
            if spec.seChannels > 0 {
                let reduce = names(.seReduce).conv, expandName = names(.seExpand).conv
                se = try SqueezeExcite(
                    reduceWeight: binder.tensor(reduce + ".weight", shape: [spec.seChannels, spec.midChannels, 1, 1]),
                    reduceBias: binder.tensor(reduce + ".bias", shape: [spec.seChannels]),
                    expandWeight: binder.tensor(expandName + ".weight", shape: [spec.midChannels, spec.seChannels, 1, 1]),
                    expandBias: binder.tensor(expandName + ".bias", shape: [spec.midChannels]),
                    activation: activation)
            }
            let project = try layer.conv(names(.project).conv, bn: names(.project).bn, in: spec.midChannels,
                                         out: spec.outChannels, kernel: 1, activation: .identity)
            return MBConvBlock(expand: expand, depthwise: depthwise, squeezeExcite: se, project: project, hasSkip: spec.hasSkip)
        }
        if includeClassifier {
            let last = blockSpecs.last?.outChannels ?? architecture.scaledStemChannels
            head = try layer.conv(keys.head.conv, bn: keys.head.bn, in: last, out: architecture.scaledHeadChannels,
                                  kernel: 1, activation: activation)
            let weight = try binder.tensor(keys.classifier + ".weight", shape: [architecture.numClasses, architecture.scaledHeadChannels])
            classifier = try Conv2D(weight: weight.reshaped([architecture.numClasses, architecture.scaledHeadChannels, 1, 1]),
                                    bias: binder.tensor(keys.classifier + ".bias", shape: [architecture.numClasses]))
        } else {
            head = nil
            classifier = nil
        }
    }

    /// The features at strides 2, 4, 8, 16, 32 for an NHWC input [N, H, W, 3] of any size.
    /// `pools`: what the squeeze-and-excitation gates take as their channel means (nil: each
    /// its own input's, as the reference).
    public func features(_ input: Tensor, pools: GlobalPooling? = nil) throws -> [Tensor] {
        try run(input, pools: pools).features
    }

    /// Class logits [N, numClasses] (before softmax).
    public func logits(_ input: Tensor) throws -> Tensor {
        guard let head, let classifier else {
            throw TensorError("EfficientNet.logits", "this network was built without its classifier")
        }
        let last = try run(input).last
        let pooled = try globalAveragePool(head(last))
        let logits = try classifier(pooled)
        return try logits.reshaped([logits.shape[0], architecture.numClasses])
    }

    private func run(_ input: Tensor, pools: GlobalPooling? = nil) throws -> (features: [Tensor], last: Tensor) {
        let (_, h, w, channels) = try input.requireNHWC("EfficientNet")
        guard channels == 3 else { throw TensorError("EfficientNet", "expected 3 input channels, found \(channels)") }
        pools?.inputSize = (h, w)
        var x = try stem(input)
        var features: [Tensor] = stemIsFeature ? [x] : []
        for (block, spec) in zip(blocks, blockSpecs) {
            x = try block(x, pools: pools)
            if spec.isFeature { features.append(x) }
        }
        return (features, x)
    }
}

/// expand (1x1) → depthwise → squeeze-excite → project (1x1) [+ input].
struct MBConvBlock: Sendable {
    let expand: Conv2D?
    let depthwise: DepthwiseConv2D
    let squeezeExcite: SqueezeExcite?
    let project: Conv2D
    let hasSkip: Bool

    /// Expanded tensors from this many floats up are computed band by band with the depthwise
    /// convolution (`DepthwiseConv2D.expanding`): below it they stay in cache anyway.
    static let fusedExpansionFloats = 1 << 18

    func callAsFunction(_ input: Tensor, pools: GlobalPooling? = nil) throws -> Tensor {
        let residual = hasSkip ? input : nil
        let x: Tensor
        if let expand, input.count / max(expand.inChannels, 1) * expand.outChannels >= Self.fusedExpansionFloats {
            guard squeezeExcite != nil else {
                return try depthwise.expanding(input, by: expand, projectingBy: project, residual: residual)
            }
            x = try depthwise.expanding(input, by: expand)
        } else if let expand {
            x = try depthwise.expandingChannels(input, by: expand)
        } else if squeezeExcite == nil {
            // No expansion (a depthwise-separable block): the projection takes the depthwise
            // output band by band, so it never goes through memory.
            return try project(depthwise: depthwise, of: input, residual: residual)
        } else {
            x = try depthwise(input)
        }
        guard let squeezeExcite else { return try project(x, residual: residual) }
        // The SE gate scales the projection's weights rather than the activations.
        return try project(x, scalingInputChannelsBy: squeezeExcite.gate(x, pools: pools), residual: residual)
    }
}

/// Builds convolutions from bound weights with their BatchNorm folded in.
struct LayerBinder {
    let binder: WeightBinder
    let padding: PaddingMode
    let eps: Float

    func batchNorm(_ name: String, channels: Int) throws -> BatchNorm {
        try BatchNorm(weight: binder.tensor(name + ".weight", shape: [channels]).scalars,
                      bias: binder.tensor(name + ".bias", shape: [channels]).scalars,
                      runningMean: binder.tensor(name + ".running_mean", shape: [channels]).scalars,
                      runningVar: binder.tensor(name + ".running_var", shape: [channels]).scalars, eps: eps)
    }

    /// A convolution and its BatchNorm (folded). Without a BatchNorm the convolution has a bias;
    /// with one, a bias only when `bias` says so (effdet's "redundant bias").
    /// `padding` overrides the binder's mode for this layer.
    func conv(_ name: String, bn: String?, in inChannels: Int, out: Int, kernel: Int, stride: Int = 1,
              dilation: Int = 1, activation: Activation, bias: Bool? = nil, padding layerPadding: PaddingMode? = nil) throws -> Conv2D {
        let hasBias = bias ?? (bn == nil)
        let conv = try Conv2D(weight: binder.tensor(name + ".weight", shape: [out, inChannels, kernel, kernel]),
                              bias: hasBias ? binder.tensor(name + ".bias", shape: [out]) : nil,
                              stride: stride, dilation: dilation, padding: layerPadding ?? padding, activation: activation)
        return try bn.map { try conv.folding(batchNorm($0, channels: out)) } ?? conv
    }

    func depthwise(_ name: String, bn: String?, channels: Int, kernel: Int, stride: Int, dilation: Int,
                   activation: Activation, bias: Bool? = nil, padding layerPadding: PaddingMode? = nil) throws -> DepthwiseConv2D {
        let hasBias = bias ?? (bn == nil)
        let conv = try DepthwiseConv2D(weight: binder.tensor(name + ".weight", shape: [channels, 1, kernel, kernel]),
                                       bias: hasBias ? binder.tensor(name + ".bias", shape: [channels]) : nil,
                                       stride: stride, dilation: dilation, padding: layerPadding ?? padding, activation: activation)
        return try bn.map { try conv.folding(batchNorm($0, channels: channels)) } ?? conv
    }
}
