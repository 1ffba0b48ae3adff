import EffWeights
import Foundation

/// What a checkpoint holds, read from its key layout and tensor shapes: one function from a
/// checkpoint to a model description, so the CLI's --model / --encoder only override it.
public enum RecognisedModel: Sendable, Equatable, CustomStringConvertible {
    /// An EfficientNet classifier, by the reference library's name for it.
    case classifier(name: String, classes: Int)
    /// An effdet EfficientDet, by effdet's name.
    case detector(name: String, classes: Int)
    /// An smp DeepLabV3Plus, by its encoder's smp name.
    case segmenter(encoder: String, classes: Int)

    public var description: String {
        switch self {
        case .classifier(let name, let classes): return "the classifier \(name) (\(classes) classes)"
        case .detector(let name, let classes): return "the detector \(name) (\(classes) classes)"
        case .segmenter(let encoder, let classes): return "a DeepLabV3Plus with the \(encoder) encoder (\(classes) classes)"
        }
    }
}

public enum ModelRecognition {
    /// The model `store` holds, or nil when its layout or shapes match none effdense knows.
    /// timm and effdet's TF-ported and PyTorch-native flavours have the same shapes: the TF-ported
    /// (official) name is given (`tf_efficientnet_b3`, `tf_efficientdet_d3`).
    public static func recognise(_ store: WeightStore) -> RecognisedModel? {
        switch store.layout {
        case .effdet:
            return recogniseDetector(store)
        case .smpDeepLabV3PlusLukemelas, .smpDeepLabV3PlusTimm:
            guard let backbone = backbone(store, keys: EfficientNetKeys(for: store.layout)),
                  let head = store.info("segmentation_head.0.weight"), head.shape.count == 4 else { return nil }
            let lukemelas = store.layout == .smpDeepLabV3PlusLukemelas
            guard !backbone.lite else { return nil }
            return .segmenter(encoder: (lukemelas ? "efficientnet-b" : "timm-efficientnet-b") + "\(backbone.level)", classes: head.shape[0])
        case .timm, .lukemelas, .torchvision:
            let keys = EfficientNetKeys(for: store.layout)
            guard let backbone = backbone(store, keys: keys),
                  let classifier = store.info(keys.classifier + ".weight"), classifier.shape.count == 2 else { return nil }
            let name: String
            switch (store.layout, backbone.lite) {
            case (.lukemelas, false): name = "efficientnet-b\(backbone.level)"
            case (.lukemelas, true): name = "efficientnet-lite\(backbone.level)"
            case (.torchvision, false): name = "torchvision_efficientnet_b\(backbone.level)"
            case (_, false): name = "tf_efficientnet_b\(backbone.level)"
            default: name = "tf_efficientnet_lite\(backbone.level)"
            }
            return .classifier(name: name, classes: classifier.shape[0])
        case .unknown:
            return nil
        }
    }

    /// The B-level (0...7) or Lite level (0...4) of the EfficientNet under `keys`: its block count
    /// and last block's channels against every level's stage table.
    static func backbone(_ store: WeightStore, keys: EfficientNetKeys) -> (level: Int, lite: Bool)? {
        let lite = !store.names.contains { $0.hasPrefix(keys.prefix) && ($0.contains("se.conv_reduce") || $0.contains("_se_reduce") || $0.contains(".fc1.")) }
        for level in 0..<(lite ? 5 : 8) {
            let architecture = lite ? liteArchitecture(level) : bArchitecture(level)
            guard let blocks = try? architecture.blocks(), let last = blocks.last else { continue }
            let (conv, _) = keys.block(last, flatIndex: blocks.count - 1, .project)
            let next = EfficientNetArchitecture.Block(stage: last.stage, index: last.index + 1, kind: last.kind, inChannels: 0,
                                                      midChannels: 0, outChannels: 0, kernel: 1, stride: 1, dilation: 1,
                                                      seChannels: 0, hasSkip: false, isFeature: false)
            let (beyond, _) = keys.block(next, flatIndex: blocks.count, .project)
            // The last block exists with this level's channels, and no block follows it.
            if store.info(conv + ".weight")?.shape.first == last.outChannels, store.info(beyond + ".weight") == nil,
               store.info(keys.stem.conv + ".weight")?.shape.first == architecture.scaledStemChannels {
                return (level, lite)
            }
        }
        return nil
    }

    static func bArchitecture(_ level: Int) -> EfficientNetArchitecture {
        let scaling: [(Double, Double)] = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8), (1.6, 2.2), (1.8, 2.6), (2.0, 3.1)]
        return EfficientNetArchitecture(width: scaling[level].0, depth: scaling[level].1, flavour: .tensorflow)
    }

    static func liteArchitecture(_ level: Int) -> EfficientNetArchitecture {
        let scaling: [(Double, Double)] = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8)]
        return EfficientNetArchitecture(width: scaling[level].0, depth: scaling[level].1, flavour: .tensorflow, isLite: true)
    }

    /// effdet: the backbone level, BiFPN width and repeats, head repeats and levels against the
    /// shipped configs (TF-ported names first).
    static func recogniseDetector(_ store: WeightStore) -> RecognisedModel? {
        guard let backbone = backbone(store, keys: EfficientNetKeys(layout: .timm, prefix: "backbone.")),
              let head = store.info("class_net.predict.conv_pw.weight"), head.shape.count == 4,
              let width = store.info("class_net.conv_rep.0.conv_pw.weight")?.shape.first else { return nil }
        func count(_ prefix: String) -> Int {
            Set(store.names.compactMap { name -> Int? in
                guard name.hasPrefix(prefix) else { return nil }
                return Int(name.dropFirst(prefix.count).prefix { $0.isNumber })
            }).count
        }
        let cells = count("fpn.cell."), headRepeats = count("class_net.conv_rep."), levels = count("class_net.bn_rep.0.")
        let names = (0..<8).map { "tf_efficientdet_d\($0)" } + ["tf_efficientdet_d7x"] + (0..<5).map { "tf_efficientdet_lite\($0)" }
            + ["efficientdet_d0", "efficientdet_d1"]
        for name in names {
            guard let config = try? DetectionConfig.named(name).config,
                  let configBackbone = try? ClassificationModel.named(config.backbone).architecture else { continue }
            let level = configBackbone.isLite ? liteLevel(configBackbone) : bLevel(configBackbone)
            guard configBackbone.isLite == backbone.lite, level == backbone.level, config.fpnChannels == width,
                  config.fpnCellRepeats == cells, config.boxClassRepeats == headRepeats,
                  config.maxLevel - config.minLevel + 1 == levels, head.shape[0] % config.anchorsPerLocation == 0 else { continue }
            return .detector(name: name, classes: head.shape[0] / config.anchorsPerLocation)
        }
        return nil
    }

    static func bLevel(_ architecture: EfficientNetArchitecture) -> Int? {
        (0..<8).first { bArchitecture($0).widthMultiplier == architecture.widthMultiplier && bArchitecture($0).depthMultiplier == architecture.depthMultiplier }
    }

    static func liteLevel(_ architecture: EfficientNetArchitecture) -> Int? {
        (0..<5).first { liteArchitecture($0).widthMultiplier == architecture.widthMultiplier && liteArchitecture($0).depthMultiplier == architecture.depthMultiplier }
    }

    /// The model name without its flavour (`tf_efficientnet_b3`, `efficientnet_b3` → `b3`;
    /// `tf_efficientdet_d0`, `efficientdet_d0`, `d0` → `d0`), to tell a flag that contradicts a
    /// checkpoint from one that picks another flavour of the same shapes.
    public static func structure(_ name: String) -> String {
        let canonical = CheckpointRegistry.canonicalName(name) ?? name
        for prefix in ["torchvision_efficientnet_", "tf_efficientnet_", "efficientnet_", "efficientnet-", "timm-efficientnet-",
                       "tf_efficientdet_", "efficientdet_"] where canonical.hasPrefix(prefix) {
            return String(canonical.dropFirst(prefix.count))
        }
        return canonical
    }
}
