import EffCore
import EffWeights
import Foundation

/// EfficientDet as effdet builds it: EfficientNet backbone (features at strides 8, 16, 32),
/// BiFPN, class and box heads. Works on inputs of the config's image size.
public struct EfficientDet: Sendable {
    public let config: DetectionConfig
    public let backbone: EfficientNet
    let fpn: BiFPN
    let classNet: HeadNet
    let boxNet: HeadNet

    /// Builds the network and binds every weight under effdet's key names (strictly: call
    /// `binder.finish()` afterwards to refuse unused keys). `backbone` replaces the architecture
    /// `config.backbone` names (e.g. another width).
    public init(config: DetectionConfig, backbone backboneArchitecture: EfficientNetArchitecture? = nil, weights binder: WeightBinder) throws {
        self.config = config
        let architecture: EfficientNetArchitecture
        if let backboneArchitecture {
            architecture = backboneArchitecture
        } else {
            do {
                architecture = try ClassificationModel.named(config.backbone).architecture
            } catch {
                throw ConfigError(config.name, "unknown backbone '\(config.backbone)'")
            }
        }
        backbone = try EfficientNet(architecture: architecture, weights: binder,
                                    keys: EfficientNetKeys(layout: .timm, prefix: "backbone."), includeClassifier: false)
        let layer = LayerBinder(binder: binder, padding: config.padding, eps: config.normEps)
        fpn = try BiFPN(config: config, backboneChannels: Array(backbone.featureChannels.suffix(3)), layer: layer)
        classNet = try HeadNet(prefix: "class_net.", outputsPerAnchor: config.numClasses, config: config, layer: layer)
        boxNet = try HeadNet(prefix: "box_net.", outputsPerAnchor: 4, config: config, layer: layer)
    }

    /// Raw outputs per level (min...max): class logits [1, H, W, anchors · classes] and box
    /// deltas [1, H, W, anchors · 4] (ty, tx, th, tw), NHWC.
    public func callAsFunction(_ input: Tensor) throws -> (classes: [Tensor], boxes: [Tensor]) {
        let (_, h, w, _) = try input.requireNHWC("EfficientDet")
        guard [h, w] == config.imageSize else {
            throw TensorError("EfficientDet", "input is \(h)x\(w), the model \(config.name) takes \(config.imageSize[0])x\(config.imageSize[1]) (letterbox the picture first)")
        }
        let features = try fpn(Array(backbone.features(input).suffix(3)))
        return (try classNet(features), try boxNet(features))
    }
}

/// Anchor boxes for every level, position, scale and aspect ratio (in that order), as
/// (y1, x1, y2, x2) in input pixels — effdet's Anchors, computed in double then rounded to float.
public struct AnchorGrid: Sendable {
    /// 4 values per anchor.
    public let boxes: [Float]
    public var count: Int { boxes.count / 4 }

    public init(config: DetectionConfig) {
        let sizes = config.featureSizes
        var boxes: [Float] = []
        for level in config.minLevel...config.maxLevel {
            let strideY = Double(sizes[0].height) / Double(sizes[level].height)
            let strideX = Double(sizes[0].width) / Double(sizes[level].width)
            var configs: [(Double, Double)] = []  // half sizes (y, x)
            for octave in 0..<config.numScales {
                for aspect in config.aspectRatios {
                    let octaveScale = pow(2, Double(octave) / Double(config.numScales))
                    let baseX = config.anchorScale * strideX * octaveScale, baseY = config.anchorScale * strideY * octaveScale
                    configs.append((baseY * aspect[1] / 2, baseX * aspect[0] / 2))
                }
            }
            // np.arange(stride / 2, size, stride): start + i * step.
            func centres(_ stride: Double, _ size: Int) -> [Double] {
                let count = Int(((Double(size) - stride / 2) / stride).rounded(.up))
                return (0..<max(count, 0)).map { stride / 2 + Double($0) * stride }
            }
            for y in centres(strideY, config.imageSize[0]) {
                for x in centres(strideX, config.imageSize[1]) {
                    for (halfY, halfX) in configs {
                        boxes += [Float(y - halfY), Float(x - halfX), Float(y + halfY), Float(x + halfX)]
                    }
                }
            }
        }
        self.boxes = boxes
    }
}
