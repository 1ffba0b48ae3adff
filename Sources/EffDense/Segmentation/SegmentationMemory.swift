import EffCore

/// What a whole-picture DeepLabV3+ segmentation needs in memory, from measurements: peak RSS of
/// `effdense bench --model deeplabv3plus --encoder E --size S` (random weights, 21 classes,
/// output stride 16) at S = 512 and 1024, as a straight line in the network's input megapixels
/// (`scripts/measure_memory.sh` remeasures; README.md "Memory" shows the same table).
public enum SegmentationMemory {
    /// efficientnet-b0 ... b7 (timm-efficientnet-bN has the same widths): MB before any picture
    /// (runtime, weights) and MB per megapixel of network input.
    public static let measured: [(encoder: String, fixedMB: Double, perMegapixelMB: Double)] = [
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

    /// The measured figures for an encoder name (`efficientnet-b4`, `timm-efficientnet-b4`).
    public static func figures(encoder: String) -> (fixedMB: Double, perMegapixelMB: Double) {
        let base = encoder.hasPrefix("timm-") ? String(encoder.dropFirst(5)) : encoder
        let row = measured.first { $0.encoder == base } ?? measured[measured.count - 1]
        return (row.fixedMB, row.perMegapixelMB)
    }

    /// Bytes a segmentation needs on top of what is allocated once the model is loaded and the
    /// picture decoded: the network at `networkPixels` (per-megapixel figure, 10% margin; classes
    /// beyond 21 add their logits at 1/4 and full size), then the mask, its PNG and an overlay
    /// at the picture's size (8 bytes a pixel).
    public static func additionalBytes(encoder: String, outputStride: Int, classes: Int, networkPixels: Int, picturePixels: Int) -> Int {
        let megapixels = Double(networkPixels) / 1e6
        var perMegapixel = figures(encoder: encoder).perMegapixelMB * (outputStride == 8 ? outputStride8Factor : 1)
        perMegapixel += Double(max(0, classes - 21)) * 4.25
        let network = perMegapixel * megapixels * 1.1 * 1_048_576
        return Int(network) + 8 * picturePixels
    }

    /// The largest longer side for which `additionalBytes` stays within `available`, for a
    /// picture of the given aspect (longer / shorter side); nil when not even 64 pixels fit.
    public static func fittingLongerSide(encoder: String, outputStride: Int, classes: Int, aspect: Double,
                                         picturePixels: Int, available: Int) -> Int? {
        var side = 16384
        while side >= 64 {
            let pixels = Int(Double(side) * Double(side) / aspect)
            if additionalBytes(encoder: encoder, outputStride: outputStride, classes: classes, networkPixels: pixels,
                               picturePixels: picturePixels) <= available { return side }
            side = side * 7 / 8
        }
        return nil
    }
}
