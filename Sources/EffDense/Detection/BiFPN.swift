import EffCore
import EffWeights
import Foundation

/// How a BiFPN node weighs its inputs.
public enum FeatureFusion: Sendable, Equatable {
    /// relu(w) / (Σ relu(w) + 1e-4) — effdet's "fastattn".
    case fastAttention
    /// softmax(w) — "attn".
    case softmax
    /// Plain sum — "sum" (D6 and up).
    case sum
}

/// One node of a BiFPN cell: the level it produces and the earlier nodes it reads
/// (0..<levels are the cell's inputs, later offsets the nodes before it).
struct FPNNodeSpec: Equatable {
    let level: Int
    let inputs: [Int]

    /// effdet's bifpn_config: a top-down pass (levels max-1 ... min), then bottom-up (min+1 ... max).
    static func bifpn(minLevel: Int, maxLevel: Int) -> [FPNNodeSpec] {
        let levels = maxLevel - minLevel + 1
        var ids = [Int: [Int]]()
        for i in 0..<levels { ids[minLevel + i] = [i] }
        var next = levels
        var nodes: [FPNNodeSpec] = []
        for level in stride(from: maxLevel - 1, through: minLevel, by: -1) {
            nodes.append(FPNNodeSpec(level: level, inputs: [ids[level]!.last!, ids[level + 1]!.last!]))
            ids[level]!.append(next)
            next += 1
        }
        for level in (minLevel + 1)...maxLevel {
            nodes.append(FPNNodeSpec(level: level, inputs: ids[level]! + [ids[level - 1]!.last!]))
            ids[level]!.append(next)
            next += 1
        }
        return nodes
    }
}

/// Brings a feature map to another size and channel count: an optional 1x1 convolution (with
/// its BatchNorm folded), then a max-pool down (kernel stride + 1) or a nearest up-sample.
struct ResampleFeatureMap: Sendable {
    enum Resize: Sendable { case none, maxPool(kernel: Int, stride: Int), nearest(height: Int, width: Int) }
    let conv: Conv2D?
    let resize: Resize
    let padding: PaddingMode

    init(prefix: String, inChannels: Int, outChannels: Int, inputSize: (height: Int, width: Int),
         outputSize: (height: Int, width: Int), config: DetectionConfig, layer: LayerBinder) throws {
        if inChannels != outChannels {
            let bias = !config.applyResampleBn || config.redundantBias
            conv = try layer.conv(prefix + "conv.conv", bn: config.applyResampleBn ? prefix + "conv.bn" : nil,
                                  in: inChannels, out: outChannels, kernel: 1, activation: .identity, bias: bias)
        } else {
            conv = nil
        }
        padding = config.padding
        if inputSize.height > outputSize.height && inputSize.width > outputSize.width {
            let strideH = (inputSize.height - 1) / outputSize.height + 1
            let strideW = (inputSize.width - 1) / outputSize.width + 1
            guard strideH == strideW else {
                throw ConfigError(config.name, "non-square down-sampling \(strideH)x\(strideW) is not supported")
            }
            resize = .maxPool(kernel: strideH + 1, stride: strideH)
        } else if inputSize.height < outputSize.height || inputSize.width < outputSize.width {
            resize = .nearest(height: outputSize.height, width: outputSize.width)
        } else {
            resize = .none
        }
    }

    func callAsFunction(_ input: Tensor) throws -> Tensor {
        let x = try conv.map { try $0(input) } ?? input
        switch resize {
        case .none: return x
        case .maxPool(let kernel, let stride): return try maxPool2D(x, kernel: kernel, stride: stride, padding: padding)
        case .nearest(let height, let width): return try resizeNearest(x, height: height, width: width)
        }
    }
}

/// A BiFPN node: resample its inputs, fuse them, activate, then a separable 3x3 convolution
/// (depthwise, pointwise with BatchNorm folded).
struct FPNNode: Sendable {
    let resamples: [ResampleFeatureMap]
    let inputs: [Int]
    let weights: [Float]
    let activation: Activation
    let depthwise: DepthwiseConv2D
    let pointwise: Conv2D

    func callAsFunction(_ features: [Tensor]) throws -> Tensor {
        let resampled = try zip(inputs, resamples).map { offset, resample in try resample(features[offset]) }
        let fused = activate(try weightedSum(resampled, weights: weights), activation)
        return try pointwise(depthwise: depthwise, of: fused)
    }
}

/// The BiFPN: extra levels made from the last backbone feature, then repeated cells.
struct BiFPN: Sendable {
    let extraLevels: [ResampleFeatureMap]
    let cells: [[FPNNode]]
    let levels: Int

    init(config: DetectionConfig, backboneChannels: [Int], layer: LayerBinder) throws {
        let sizes = config.featureSizes
        levels = config.maxLevel - config.minLevel + 1
        guard let activation = config.activation, let fusion = config.fusion else {
            throw ConfigError(config.name, "unsupported act_type or fpn_name")
        }
        // (channels, size) of each cell input.
        var info: [(channels: Int, size: (height: Int, width: Int))] = []
        var extra: [ResampleFeatureMap] = []
        var previousSize = sizes[config.minLevel]
        var channels = 0
        for level in 0..<levels {
            let size = sizes[level + config.minLevel]
            if level < backboneChannels.count {
                channels = backboneChannels[level]
            } else {
                extra.append(try ResampleFeatureMap(prefix: "fpn.resample.\(level).", inChannels: channels, outChannels: config.fpnChannels,
                                                    inputSize: previousSize, outputSize: size, config: config, layer: layer))
                channels = config.fpnChannels
            }
            info.append((channels, size))
            previousSize = size
        }
        extraLevels = extra
        let specs = FPNNodeSpec.bifpn(minLevel: config.minLevel, maxLevel: config.maxLevel)
        var cells: [[FPNNode]] = []
        for rep in 0..<config.fpnCellRepeats {
            let nodeInfo = info + specs.map { (config.fpnChannels, sizes[$0.level]) }
            var nodes: [FPNNode] = []
            for (i, spec) in specs.enumerated() {
                let prefix = "fpn.cell.\(rep).fnode.\(i)."
                let outputSize = sizes[spec.level]
                let resamples = try spec.inputs.map { offset in
                    try ResampleFeatureMap(prefix: prefix + "combine.resample.\(offset).", inChannels: nodeInfo[offset].channels,
                                           outChannels: config.fpnChannels, inputSize: nodeInfo[offset].size, outputSize: outputSize,
                                           config: config, layer: layer)
                }
                let weights: [Float]
                switch fusion {
                case .sum:
                    weights = [Float](repeating: 1, count: spec.inputs.count)
                case .fastAttention:
                    let raw = try layer.binder.tensor(prefix + "combine.edge_weights", shape: [spec.inputs.count]).scalars.map { max($0, 0) }
                    let total = raw.reduce(0, +) + 0.0001
                    weights = raw.map { $0 / total }
                case .softmax:
                    let raw = try layer.binder.tensor(prefix + "combine.edge_weights", shape: [spec.inputs.count]).scalars
                    let peak = raw.max() ?? 0
                    let e = raw.map { expf($0 - peak) }
                    weights = e.map { $0 / e.reduce(0, +) }
                }
                let conv = prefix + "after_combine.conv."
                nodes.append(FPNNode(
                    resamples: resamples, inputs: spec.inputs, weights: weights, activation: activation,
                    depthwise: try layer.depthwise(conv + "conv_dw", bn: nil, channels: config.fpnChannels, kernel: 3, stride: 1,
                                                   dilation: 1, activation: .identity, bias: false),
                    pointwise: try layer.conv(conv + "conv_pw", bn: conv + "bn", in: config.fpnChannels, out: config.fpnChannels,
                                              kernel: 1, activation: .identity, bias: config.redundantBias)))
            }
            cells.append(nodes)
            info = specs.suffix(levels).map { (config.fpnChannels, sizes[$0.level]) }
        }
        self.cells = cells
    }

    /// P3...P7 from the backbone's C3...C5.
    func callAsFunction(_ backboneFeatures: [Tensor]) throws -> [Tensor] {
        var features = backboneFeatures
        for resample in extraLevels {
            guard let last = features.last else { break }
            features.append(try resample(last))
        }
        for cell in cells {
            for node in cell { features.append(try node(features)) }
            features = Array(features.suffix(levels))
        }
        return features
    }
}

/// The class or box head: repeated separable convolutions shared across levels, each followed
/// by a per-level BatchNorm (folded into a per-level copy of the pointwise convolution) and the
/// activation, then the prediction convolution.
struct HeadNet: Sendable {
    let depthwise: [DepthwiseConv2D]
    /// [repeat][level]
    let pointwise: [[Conv2D]]
    let predictDepthwise: DepthwiseConv2D
    let predictPointwise: Conv2D

    init(prefix: String, outputsPerAnchor: Int, config: DetectionConfig, layer: LayerBinder) throws {
        guard let activation = config.activation else { throw ConfigError(config.name, "unsupported act_type") }
        let channels = config.fpnChannels, levels = config.maxLevel - config.minLevel + 1
        var depthwise: [DepthwiseConv2D] = []
        var pointwise: [[Conv2D]] = []
        for r in 0..<config.boxClassRepeats {
            let conv = prefix + "conv_rep.\(r)."
            depthwise.append(try layer.depthwise(conv + "conv_dw", bn: nil, channels: channels, kernel: 3, stride: 1, dilation: 1,
                                                 activation: .identity, bias: false))
            pointwise.append(try (0..<levels).map { level in
                try layer.conv(conv + "conv_pw", bn: prefix + "bn_rep.\(r).\(level).bn", in: channels, out: channels, kernel: 1,
                               activation: activation, bias: config.redundantBias)
            })
        }
        self.depthwise = depthwise
        self.pointwise = pointwise
        predictDepthwise = try layer.depthwise(prefix + "predict.conv_dw", bn: nil, channels: channels, kernel: 3, stride: 1,
                                               dilation: 1, activation: .identity, bias: false)
        predictPointwise = try layer.conv(prefix + "predict.conv_pw", bn: nil, in: channels,
                                          out: outputsPerAnchor * config.anchorsPerLocation, kernel: 1, activation: .identity, bias: true)
    }

    func callAsFunction(_ features: [Tensor]) throws -> [Tensor] {
        try features.enumerated().map { level, feature in
            var x = feature
            for (dw, pw) in zip(depthwise, pointwise) { x = try pw[level](depthwise: dw, of: x) }
            return try predictPointwise(depthwise: predictDepthwise, of: x)
        }
    }
}
