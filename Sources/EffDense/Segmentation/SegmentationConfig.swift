import Foundation

/// A DeepLabV3+ configuration (configs/deeplabv3plus.yaml, smp's argument names).
public struct SegmentationConfig: Sendable, Equatable, Decodable {
    public var name: String
    /// smp encoder name (`efficientnet-b0`, `timm-efficientnet-b0`, ...).
    public var encoder: String
    public var numClasses: Int
    /// Class-name file, relative to the config's folder.
    public var labels: String?
    public var outputStride = 16
    public var atrousRates = [12, 24, 36]
    public var decoderChannels = 256
    public var upsampling = 4
    public var mean: [Float] = ClassifierPreprocessing.imagenetMean
    public var std: [Float] = ClassifierPreprocessing.imagenetStd

    enum CodingKeys: String, CodingKey {
        case name, encoder, labels, upsampling, mean, std
        case numClasses = "num_classes", outputStride = "output_stride", atrousRates = "atrous_rates", decoderChannels = "decoder_channels"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        encoder = try c.decode(String.self, forKey: .encoder)
        numClasses = try c.decode(Int.self, forKey: .numClasses)
        labels = try c.decodeIfPresent(String.self, forKey: .labels)
        outputStride = try c.decodeIfPresent(Int.self, forKey: .outputStride) ?? outputStride
        atrousRates = try c.decodeIfPresent([Int].self, forKey: .atrousRates) ?? atrousRates
        decoderChannels = try c.decodeIfPresent(Int.self, forKey: .decoderChannels) ?? decoderChannels
        upsampling = try c.decodeIfPresent(Int.self, forKey: .upsampling) ?? upsampling
        mean = try c.decodeIfPresent([Float].self, forKey: .mean) ?? mean
        std = try c.decodeIfPresent([Float].self, forKey: .std) ?? std
    }

    /// Reads and checks a YAML config file.
    public static func load(contentsOf path: String) throws -> SegmentationConfig {
        let config = try loadYAML(SegmentationConfig.self, contentsOf: path)
        guard [8, 16].contains(config.outputStride), config.atrousRates.count == 3, config.atrousRates.allSatisfy({ $0 > 0 }),
              (1...256).contains(config.numClasses), config.decoderChannels > 0, config.upsampling > 0,
              config.mean.count == 3, config.std.count == 3, !config.std.contains(0) else {
            throw ConfigError(path, "output_stride must be 8 or 16, atrous_rates three positive numbers, num_classes 1...256, mean and std three values")
        }
        return config
    }
}
