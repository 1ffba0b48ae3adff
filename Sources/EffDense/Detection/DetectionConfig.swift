import EffCore
import EffWeights
import Foundation

/// An EfficientDet configuration (configs/<model>.yaml, effdet's field names): sizes, BiFPN,
/// heads, anchors, pre- and post-processing. A user's own file (another class count, image
/// size...) works the same way.
public struct DetectionConfig: Sendable, Equatable, Decodable {
    public var name: String
    /// The backbone by its timm name (`tf_efficientnet_b0`, `efficientnet_b0`, ...).
    public var backbone: String
    /// [height, width] of the network input.
    public var imageSize: [Int]
    public var numClasses: Int
    /// Class-name file, relative to the config's folder.
    public var labels: String?
    public var minLevel = 3
    public var maxLevel = 7
    public var numScales = 3
    public var aspectRatios: [[Double]] = [[1, 1], [1.4, 0.7], [0.7, 1.4]]
    public var anchorScale = 4.0
    /// `same` (TF) or `symmetric` (PyTorch) padding in the BiFPN and heads.
    public var padType = "same"
    public var actType = "swish"
    public var normEps: Float = 1e-3
    /// `bifpn_fa` (fast attention), `bifpn_attn` (softmax) or `bifpn_sum`.
    public var fpnName = "bifpn_fa"
    public var fpnChannels: Int
    public var fpnCellRepeats: Int
    public var boxClassRepeats: Int
    public var applyResampleBn = true
    public var redundantBias = true
    public var mean: [Float] = [0.485, 0.456, 0.406]
    public var std: [Float] = [0.229, 0.224, 0.225]
    public var maxDetectionPoints = 5000
    public var maxDetPerImage = 100

    enum CodingKeys: String, CodingKey {
        case name, backbone, labels, mean, std
        case imageSize = "image_size", numClasses = "num_classes", minLevel = "min_level", maxLevel = "max_level"
        case numScales = "num_scales", aspectRatios = "aspect_ratios", anchorScale = "anchor_scale", padType = "pad_type"
        case actType = "act_type", normEps = "norm_eps", fpnName = "fpn_name", fpnChannels = "fpn_channels"
        case fpnCellRepeats = "fpn_cell_repeats", boxClassRepeats = "box_class_repeats"
        case applyResampleBn = "apply_resample_bn", redundantBias = "redundant_bias"
        case maxDetectionPoints = "max_detection_points", maxDetPerImage = "max_det_per_image"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        backbone = try c.decode(String.self, forKey: .backbone)
        imageSize = try c.decode([Int].self, forKey: .imageSize)
        numClasses = try c.decode(Int.self, forKey: .numClasses)
        labels = try c.decodeIfPresent(String.self, forKey: .labels)
        fpnChannels = try c.decode(Int.self, forKey: .fpnChannels)
        fpnCellRepeats = try c.decode(Int.self, forKey: .fpnCellRepeats)
        boxClassRepeats = try c.decode(Int.self, forKey: .boxClassRepeats)
        minLevel = try c.decodeIfPresent(Int.self, forKey: .minLevel) ?? minLevel
        maxLevel = try c.decodeIfPresent(Int.self, forKey: .maxLevel) ?? maxLevel
        numScales = try c.decodeIfPresent(Int.self, forKey: .numScales) ?? numScales
        aspectRatios = try c.decodeIfPresent([[Double]].self, forKey: .aspectRatios) ?? aspectRatios
        anchorScale = try c.decodeIfPresent(Double.self, forKey: .anchorScale) ?? anchorScale
        padType = try c.decodeIfPresent(String.self, forKey: .padType) ?? padType
        actType = try c.decodeIfPresent(String.self, forKey: .actType) ?? actType
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? normEps
        fpnName = try c.decodeIfPresent(String.self, forKey: .fpnName) ?? fpnName
        applyResampleBn = try c.decodeIfPresent(Bool.self, forKey: .applyResampleBn) ?? applyResampleBn
        redundantBias = try c.decodeIfPresent(Bool.self, forKey: .redundantBias) ?? redundantBias
        mean = try c.decodeIfPresent([Float].self, forKey: .mean) ?? mean
        std = try c.decodeIfPresent([Float].self, forKey: .std) ?? std
        maxDetectionPoints = try c.decodeIfPresent(Int.self, forKey: .maxDetectionPoints) ?? maxDetectionPoints
        maxDetPerImage = try c.decodeIfPresent(Int.self, forKey: .maxDetPerImage) ?? maxDetPerImage
    }

    /// Reads and checks a YAML config file.
    public static func load(contentsOf path: String) throws -> DetectionConfig {
        let config = try loadYAML(DetectionConfig.self, contentsOf: path)
        try config.validate(file: path)
        return config
    }

    /// The shipped config for a model name (`tf_efficientdet_d0`, `d0`, `efficientdet_d1`...).
    public static func named(_ name: String) throws -> (config: DetectionConfig, file: String) {
        let canonical = CheckpointRegistry.canonicalName(name) ?? name
        guard let file = ProjectFiles.locate("configs/\(canonical).yaml") else {
            throw ConfigError("configs/\(canonical).yaml", "no detection config for '\(name)' (pass --config FILE, or set EFFDENSE_HOME to the effdense folder)")
        }
        return (try load(contentsOf: file.path), file.path)
    }

    /// Checks every field, naming `file` in the error.
    public func validate(file: String) throws {
        func fail(_ problem: String) -> ConfigError { ConfigError(file, problem) }
        guard imageSize.count == 2, imageSize.allSatisfy({ $0 > 0 }) else { throw fail("image_size must be [height, width], found \(imageSize)") }
        // Sizes need not divide by 2^max_level (EfficientDet-Lite0 is 320): each level rounds up,
        // as effdet's get_feat_sizes does (featureSizes).
        guard imageSize.allSatisfy({ $0 <= 8192 }) else { throw fail("image_size \(imageSize) is over 8192") }
        guard minLevel == 3, (7...8).contains(maxLevel) else { throw fail("levels must be 3...7 or 3...8, found \(minLevel)...\(maxLevel)") }
        guard numClasses > 0, fpnChannels > 0, fpnCellRepeats > 0, boxClassRepeats > 0, numScales > 0 else {
            throw fail("num_classes, fpn_channels, fpn_cell_repeats, box_class_repeats and num_scales must be positive")
        }
        guard !aspectRatios.isEmpty, aspectRatios.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0 > 0 } }) else {
            throw fail("aspect_ratios must be pairs of positive numbers")
        }
        guard ["same", "symmetric", ""].contains(padType) else { throw fail("pad_type must be 'same' or 'symmetric', found '\(padType)'") }
        guard activation != nil else { throw fail("act_type must be swish, silu, relu or relu6, found '\(actType)'") }
        guard fusion != nil else { throw fail("fpn_name must be bifpn_fa, bifpn_attn or bifpn_sum, found '\(fpnName)'") }
        guard mean.count == 3, std.count == 3, !std.contains(0) else { throw fail("mean and std need three values, std no zero") }
        guard maxDetectionPoints > 0, maxDetPerImage > 0 else { throw fail("max_detection_points and max_det_per_image must be positive") }
    }

    var padding: PaddingMode { padType == "same" ? .same : .symmetric }

    var activation: Activation? {
        switch actType {
        case "swish", "silu": return .silu
        case "relu": return .relu
        case "relu6": return .relu6
        default: return nil
        }
    }

    var fusion: FeatureFusion? {
        switch fpnName {
        case "bifpn_fa": return .fastAttention
        case "bifpn_attn": return .softmax
        case "bifpn_sum": return .sum
        default: return nil
        }
    }

    /// Anchors per feature-map position.
    public var anchorsPerLocation: Int { numScales * aspectRatios.count }

    /// (height, width) of every level 0...maxLevel, as effdet's get_feat_sizes.
    public var featureSizes: [(height: Int, width: Int)] {
        var sizes = [(imageSize[0], imageSize[1])]
        for _ in 1...maxLevel {
            let last = sizes[sizes.count - 1]
            sizes.append(((last.0 - 1) / 2 + 1, (last.1 - 1) / 2 + 1))
        }
        return sizes
    }
}
