import EffWeights

/// The parts of an MBConv block that carry weights.
public enum MBConvPart: Sendable { case expand, depthwise, seReduce, seExpand, project }

/// How an EfficientNet's parameters are named in a checkpoint: timm's layout (also effdet's
/// backbone and smp's `timm-efficientnet-bN` encoders) or lukemelas' (smp's `efficientnet-bN`
/// encoders, the real Lite0 checkpoint), under an optional prefix (`backbone.`, `encoder.`).
public struct EfficientNetKeys: Sendable, Equatable {
    public enum Layout: Sendable, Equatable { case timm, lukemelas, torchvision }
    public var layout: Layout
    public var prefix: String

    public init(layout: Layout, prefix: String = "") {
        self.layout = layout
        self.prefix = prefix
    }

    /// The layout a checkpoint's keys follow, for its EfficientNet part.
    public init(for keyLayout: KeyLayout) {
        switch keyLayout {
        case .lukemelas: self.init(layout: .lukemelas)
        case .smpDeepLabV3PlusLukemelas: self.init(layout: .lukemelas, prefix: "encoder.")
        case .smpDeepLabV3PlusTimm: self.init(layout: .timm, prefix: "encoder.")
        case .effdet: self.init(layout: .timm, prefix: "backbone.")
        case .torchvision: self.init(layout: .torchvision)
        case .timm, .unknown: self.init(layout: .timm)
        }
    }

    /// (convolution, batch norm) names of the stem.
    public var stem: (conv: String, bn: String) {
        switch layout {
        case .timm: return (prefix + "conv_stem", prefix + "bn1")
        case .lukemelas: return (prefix + "_conv_stem", prefix + "_bn0")
        case .torchvision: return (prefix + "features.0.0", prefix + "features.0.1")
        }
    }

    /// (convolution, batch norm) names of the 1x1 head convolution (torchvision: the feature
    /// after the seven stages of the B0 table).
    public var head: (conv: String, bn: String) {
        switch layout {
        case .timm: return (prefix + "conv_head", prefix + "bn2")
        case .lukemelas: return (prefix + "_conv_head", prefix + "_bn1")
        case .torchvision: return (prefix + "features.8.0", prefix + "features.8.1")
        }
    }

    /// The classifier (a linear layer).
    public var classifier: String {
        switch layout {
        case .timm: return prefix + "classifier"
        case .lukemelas: return prefix + "_fc"
        case .torchvision: return prefix + "classifier.1"
        }
    }

    /// (convolution, batch norm if any) names of one part of block number `flatIndex`.
    public func block(_ block: EfficientNetArchitecture.Block, flatIndex: Int, _ part: MBConvPart) -> (conv: String, bn: String?) {
        switch layout {
        case .timm:
            let base = prefix + "blocks.\(block.stage).\(block.index)."
            let separable = block.kind == .depthwiseSeparable
            switch part {
            case .expand: return (base + "conv_pw", base + "bn1")
            case .depthwise: return (base + "conv_dw", base + (separable ? "bn1" : "bn2"))
            case .seReduce: return (base + "se.conv_reduce", nil)
            case .seExpand: return (base + "se.conv_expand", nil)
            case .project: return separable ? (base + "conv_pw", base + "bn2") : (base + "conv_pwl", base + "bn3")
            }
        case .lukemelas:
            let base = prefix + "_blocks.\(flatIndex)."
            switch part {
            case .expand: return (base + "_expand_conv", base + "_bn0")
            case .depthwise: return (base + "_depthwise_conv", base + "_bn1")
            case .seReduce: return (base + "_se_reduce", nil)
            case .seExpand: return (base + "_se_expand", nil)
            case .project: return (base + "_project_conv", base + "_bn2")
            }
        case .torchvision:
            // features.<stage + 1>.<index>.block: [expand,] depthwise, SE (fc1, fc2), project;
            // each convolution a Conv2dNormActivation (.0 conv, .1 BatchNorm).
            let base = prefix + "features.\(block.stage + 1).\(block.index).block."
            let first = block.kind == .invertedResidual ? 1 : 0
            switch part {
            case .expand: return (base + "0.0", base + "0.1")
            case .depthwise: return (base + "\(first).0", base + "\(first).1")
            case .seReduce: return (base + "\(first + 1).fc1", nil)
            case .seExpand: return (base + "\(first + 1).fc2", nil)
            case .project: return (base + "\(first + 2).0", base + "\(first + 2).1")
            }
        }
    }
}
