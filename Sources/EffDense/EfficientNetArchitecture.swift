import EffCore
import Foundation

/// EfficientNet as data: a stage table plus compound scaling, as timm and the TF reference
/// define it. `blocks(outputStride:)` resolves it into concrete blocks.
public struct EfficientNetArchitecture: Sendable, Equatable {
    /// MBConv block kinds: `ds` (depthwise-separable, no expansion) and `ir` (inverted residual).
    public enum BlockKind: Sendable, Equatable { case depthwiseSeparable, invertedResidual }

    /// One row of the stage table (B0 sizes, before scaling).
    public struct Stage: Sendable, Equatable {
        public var kind: BlockKind
        public var repeats: Int
        public var kernel: Int
        public var stride: Int
        public var expandRatio: Int
        public var outChannels: Int
        public init(_ kind: BlockKind, repeats: Int, kernel: Int, stride: Int, expand: Int, out: Int) {
            self.kind = kind; self.repeats = repeats; self.kernel = kernel; self.stride = stride
            self.expandRatio = expand; self.outChannels = out
        }
    }

    /// TF-ported weights (TF "SAME" padding, BN eps 1e-3) or PyTorch-native ones (symmetric
    /// padding, eps 1e-5).
    public enum Flavour: String, Sendable, Equatable {
        case tensorflow, pytorch
        public var padding: PaddingMode { self == .tensorflow ? .same : .symmetric }
        public var batchNormEps: Float { self == .tensorflow ? 1e-3 : 1e-5 }
    }

    /// EfficientNet-B0's stages: (expand, kernel, stride, out, repeats).
    public static let b0Stages: [Stage] = [
        Stage(.depthwiseSeparable, repeats: 1, kernel: 3, stride: 1, expand: 1, out: 16),
        Stage(.invertedResidual, repeats: 2, kernel: 3, stride: 2, expand: 6, out: 24),
        Stage(.invertedResidual, repeats: 2, kernel: 5, stride: 2, expand: 6, out: 40),
        Stage(.invertedResidual, repeats: 3, kernel: 3, stride: 2, expand: 6, out: 80),
        Stage(.invertedResidual, repeats: 3, kernel: 5, stride: 1, expand: 6, out: 112),
        Stage(.invertedResidual, repeats: 4, kernel: 5, stride: 2, expand: 6, out: 192),
        Stage(.invertedResidual, repeats: 1, kernel: 3, stride: 1, expand: 6, out: 320),
    ]

    public var stages: [Stage] = b0Stages
    public var widthMultiplier: Double
    public var depthMultiplier: Double
    public var flavour: Flavour
    /// Lite: no squeeze-and-excitation, ReLU6, stem and head not scaled, first and last stage
    /// repeats not scaled.
    public var isLite: Bool
    public var stemChannels = 32
    public var headChannels = 1280
    /// SE bottleneck as a fraction of the block's input channels (0.25; none for Lite).
    public var seRatio: Double { isLite ? 0 : 0.25 }
    public var activation: Activation { isLite ? .relu6 : .silu }
    public var numClasses = 1000
    /// lukemelas' EfficientNet-PyTorch (and smp's `efficientnet-bN` encoders, and the Lite models
    /// built the same way) pad every convolution with `Conv2dStaticSamePadding`: TF "SAME" amounts
    /// computed once for this nominal image size (224, 240, 260, 300, 380, ...), tracked through
    /// the strides, and used for every input size. nil: padding follows `flavour` for each input.
    public var staticPaddingImageSize: Int?
    /// Whether the first block of a stage adds its input when its stride is 1 and its channel
    /// count unchanged (timm, torchvision). lukemelas' blocks compare their stride — a list for a
    /// stage's first block — with the number 1 and never do; only narrow widths make that visible.
    public var firstBlockOfStageHasSkip = true
    /// BatchNorm epsilon: the flavour's unless set (torchvision's B5–B7 use 1e-3 with
    /// PyTorch-native padding).
    public var batchNormEps: Float?
    /// torchvision sizes the head convolution as 4 x the last stage's channels instead of scaling
    /// 1280 (the same for B0–B7 at their own widths, not at others).
    public var headIsFourTimesLastStage = false

    public init(width: Double, depth: Double, flavour: Flavour, isLite: Bool = false, numClasses: Int = 1000) {
        widthMultiplier = width
        depthMultiplier = depth
        self.flavour = flavour
        self.isLite = isLite
        self.numClasses = numClasses
    }

    /// Channels scaled by the width multiplier and rounded to a multiple of 8, adding 8 when
    /// rounding lost more than 10% (timm's round_channels / make_divisible).
    public func scaledChannels(_ channels: Int) -> Int {
        let v = Double(channels) * widthMultiplier
        var rounded = max(8, Int(v + 4) / 8 * 8)
        if Double(rounded) < 0.9 * v { rounded += 8 }
        return rounded
    }

    public var scaledStemChannels: Int { isLite ? stemChannels : scaledChannels(stemChannels) }
    public var scaledHeadChannels: Int {
        if headIsFourTimesLastStage, let last = stages.last { return 4 * scaledChannels(last.outChannels) }
        return isLite ? headChannels : scaledChannels(headChannels)
    }

    /// Repeats of stage `index` after depth scaling (ceil; Lite keeps the first and last).
    public func scaledRepeats(_ index: Int) -> Int {
        if isLite && (index == 0 || index == stages.count - 1) { return stages[index].repeats }
        return Int((Double(stages[index].repeats) * depthMultiplier).rounded(.up))
    }

    /// One resolved block.
    public struct Block: Sendable, Equatable {
        public let stage: Int, index: Int
        public let kind: BlockKind
        public let inChannels: Int, midChannels: Int, outChannels: Int
        public let kernel: Int, stride: Int, dilation: Int
        /// Squeeze-and-excitation bottleneck channels (0: none).
        public let seChannels: Int
        /// Whether the block adds its input to its output (decided when the network is built:
        /// smp's later dilation does not change it).
        public let hasSkip: Bool
        /// Whether this block's output is one of the multi-scale features.
        public var isFeature: Bool
    }

    /// The blocks with segmentation_models_pytorch's dilation: every block from flat index
    /// `from` on runs at stride 1 with `dilation` (a later entry overrides an earlier one), and
    /// the features are the outputs of the blocks in `features`.
    public func blocks(dilating ranges: [(from: Int, dilation: Int)], features: Set<Int>) throws -> [Block] {
        try blocks().enumerated().map { index, block in
            let rule = ranges.last { index >= $0.from }
            return Block(stage: block.stage, index: block.index, kind: block.kind, inChannels: block.inChannels,
                         midChannels: block.midChannels, outChannels: block.outChannels, kernel: block.kernel,
                         stride: rule == nil ? block.stride : 1, dilation: rule?.dilation ?? 1,
                         seChannels: block.seChannels, hasSkip: block.hasSkip, isFeature: features.contains(index))
        }
    }

    /// Flat index of the first block of each stage.
    public var stageStarts: [Int] {
        var starts: [Int] = [], next = 0
        for s in stages.indices {
            starts.append(next)
            next += scaledRepeats(s)
        }
        return starts
    }

    /// The blocks in order, with strides turned into dilations past `outputStride` (32, 16 or 8)
    /// as timm's builder does: the first block of a dilated stage keeps the previous dilation.
    public func blocks(outputStride: Int = 32) throws -> [Block] {
        guard [8, 16, 32].contains(outputStride) else {
            throw TensorError("EfficientNet", "output stride must be 32, 16 or 8, found \(outputStride)")
        }
        var blocks: [Block] = []
        var inChannels = scaledStemChannels
        var currentStride = 2, currentDilation = 1
        for (s, stage) in stages.enumerated() {
            let outChannels = scaledChannels(stage.outChannels)
            let repeats = scaledRepeats(s)
            for b in 0..<repeats {
                var stride = b == 0 ? stage.stride : 1
                var nextDilation = currentDilation
                if stride > 1 {
                    if currentStride * stride > outputStride {
                        nextDilation = currentDilation * stride
                        stride = 1
                    } else {
                        currentStride *= stride
                    }
                }
                let isLastOfStage = b == repeats - 1
                let isFeature = isLastOfStage && (s == stages.count - 1 || stages[s + 1].stride > 1)
                let mid = stage.kind == .invertedResidual ? inChannels * stage.expandRatio : inChannels
                let se = seRatio > 0 ? Int((Double(inChannels) * seRatio).rounded()) : 0
                let hasSkip = stride == 1 && inChannels == outChannels && (b > 0 || firstBlockOfStageHasSkip)
                blocks.append(Block(stage: s, index: b, kind: stage.kind, inChannels: inChannels, midChannels: mid,
                                    outChannels: outChannels, kernel: stage.kernel, stride: stride, dilation: currentDilation,
                                    seChannels: se, hasSkip: hasSkip, isFeature: isFeature))
                currentDilation = nextDilation
                inChannels = outChannels
            }
        }
        return blocks
    }
}
