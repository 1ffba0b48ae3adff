import EffCore

/// What a network needs in memory per megapixel of its input, from measurements
/// (`scripts/measure_memory.sh`, which prints these tables; README.md "Memory" shows them), and
/// the up-front estimate of a picture's need that segmentation and detection reserve from
/// `MemoryBudget` before any work.
public enum NetworkMemory {
    /// DeepLabV3+ per smp encoder (efficientnet-b0 ... b7; timm-efficientnet-bN has the same
    /// widths): peak RSS of `effdense bench --model deeplabv3plus --encoder E --size S` (random
    /// weights, 21 classes, output stride 16) at S = 512 and 1024 as a straight line in the input
    /// megapixels: MB before any picture (runtime, weights) and MB per megapixel.
    public static let deepLabV3Plus: [(encoder: String, fixedMB: Double, perMegapixelMB: Double)] = [
        ("efficientnet-b0", 67, 397),
        ("efficientnet-b1", 93, 370),
        ("efficientnet-b2", 82, 385),
        ("efficientnet-b3", 124, 408),
        ("efficientnet-b4", 128, 432),
        ("efficientnet-b5", 180, 461),
        ("efficientnet-b6", 260, 507),
        ("efficientnet-b7", 315, 525),
    ]

    /// Output stride 8 keeps the deep features at 1/8 instead of 1/16 and 1/32: measured on
    /// efficientnet-b0, its per-megapixel figure is this many times stride 16's.
    public static let outputStride8Factor = 1.31

    /// EfficientDet at its own input size: (peak RSS - RSS once loaded) / input megapixels of
    /// `effdense bench --model M` (random weights, 90 classes).
    public static let detectors: [(model: String, perMegapixelMB: Double)] = [
        ("tf_efficientdet_d0", 316),
        ("tf_efficientdet_d1", 344),
        ("tf_efficientdet_d2", 348),
        ("tf_efficientdet_d3", 365),
        ("tf_efficientdet_d4", 539),
        ("tf_efficientdet_d5", 383),
        ("tf_efficientdet_d6", 626),
        ("tf_efficientdet_d7", 626),
        ("tf_efficientdet_d7x", 618),
        ("tf_efficientdet_lite0", 427),
        ("tf_efficientdet_lite1", 401),
        ("tf_efficientdet_lite2", 438),
        ("tf_efficientdet_lite3", 501),
        ("tf_efficientdet_lite4", 488),
    ]

    /// MB per megapixel of input of a DeepLabV3+ (classes beyond 21 add their logits at 1/4 and
    /// full size).
    public static func segmentationPerMegapixelMB(encoder: String, outputStride: Int, classes: Int) -> Double {
        let base = encoder.hasPrefix("timm-") ? String(encoder.dropFirst(5)) : encoder
        let row = deepLabV3Plus.first { $0.encoder == base } ?? deepLabV3Plus[deepLabV3Plus.count - 1]
        return row.perMegapixelMB * (outputStride == 8 ? outputStride8Factor : 1) + Double(max(0, classes - 21)) * 4.25
    }

    /// MB per megapixel of input of an EfficientDet config (`tf_efficientdet_d3`,
    /// `efficientdet_d1`: the PyTorch-native flavour as its TF-ported twin; an unknown name:
    /// the largest figure).
    public static func detectorPerMegapixelMB(model: String) -> Double {
        let twin = model.hasPrefix("tf_") ? model : "tf_" + model
        return detectors.first { $0.model == twin }?.perMegapixelMB ?? detectors.map(\.perMegapixelMB).max() ?? 1000
    }

    /// Bytes a picture needs on top of what is allocated once the model is loaded and the
    /// picture decoded: the network at `networkPixels` (10% margin), then 8 bytes a pixel of the
    /// picture for what is drawn and encoded at its size (a mask, its PNG, an overlay or an
    /// annotated copy).
    public static func additionalBytes(perMegapixelMB: Double, networkPixels: Int, picturePixels: Int) -> Int {
        Int(perMegapixelMB * Double(networkPixels) / 1e6 * 1.1 * 1_048_576) + 8 * picturePixels
    }

    /// The largest longer side of the network's input for which `additionalBytes` stays within
    /// `available`, for a picture of the given aspect (longer / shorter side); nil when not even
    /// 64 pixels fit.
    public static func fittingLongerSide(perMegapixelMB: Double, aspect: Double, picturePixels: Int, available: Int) -> Int? {
        var side = 10000
        while side >= 64 {
            let pixels = Int(Double(side) * Double(side) / aspect)
            if additionalBytes(perMegapixelMB: perMegapixelMB, networkPixels: pixels, picturePixels: picturePixels) <= available { return side }
            side = side * 15 / 16
        }
        return nil
    }
}
