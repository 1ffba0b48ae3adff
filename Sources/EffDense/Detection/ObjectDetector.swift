import EffCore
import EffImage
import EffWeights
import Foundation

/// effdet's evaluation pre-processing: scale = min(H / h, W / w), Pillow bilinear resize to
/// (int(w · scale), int(h · scale)), pasted at the top-left of an H x W canvas filled with the
/// mean colour, then normalised.
public struct DetectionPreprocessing: Sendable, Equatable {
    public var height: Int
    public var width: Int
    public var mean: [Float]
    public var std: [Float]

    public init(config: DetectionConfig) {
        height = config.imageSize[0]
        width = config.imageSize[1]
        mean = config.mean
        std = config.std
    }

    /// The letterboxed canvas and the factor from network pixels back to picture pixels.
    public func letterbox(_ image: RGBImage) throws -> (canvas: RGBImage, imageScale: Double) {
        let scale = min(Double(height) / Double(image.height), Double(width) / Double(image.width))
        let scaledHeight = max(1, Int(Double(image.height) * scale)), scaledWidth = max(1, Int(Double(image.width) * scale))
        let resized = try image.resized(width: scaledWidth, height: scaledHeight, filter: .bilinear)
        let fill = mean.map { UInt8(clamping: Int((Double($0) * 255).rounded(.toNearestOrEven))) }
        var canvas = RGBImage(width: width, height: height, fill: (fill[0], fill[1], fill[2]))
        for y in 0..<min(scaledHeight, height) {
            let row = min(scaledWidth, width) * 3
            let src = y * scaledWidth * 3, dst = y * width * 3
            canvas.pixels.replaceSubrange(dst..<(dst + row), with: resized.pixels[src..<(src + row)])
        }
        return (canvas, 1 / scale)
    }
}

/// An object detector: letterbox, EfficientDet, effdet's post-processing, boxes in the
/// picture's own pixels.
public struct ObjectDetector: Sendable {
    public let config: DetectionConfig
    public let network: EfficientDet
    public let anchors: AnchorGrid
    public let preprocessing: DetectionPreprocessing
    public let labels: [String]

    /// Loads `config`'s model with the weights in `weightsFile` (effdet's key layout, bound
    /// strictly) and class names `labels` (one per class, or empty).
    public init(config: DetectionConfig, weightsFile: String, labels: [String] = []) throws {
        try self.init(config: config, weights: WeightStore(contentsOf: weightsFile), labels: labels)
    }

    /// Loads `config`'s model with the weights of an opened checkpoint.
    public init(config: DetectionConfig, weights store: WeightStore, labels: [String] = []) throws {
        let binder = WeightBinder(store)
        let network = try EfficientDet(config: config, weights: binder)
        try binder.finish()
        guard labels.isEmpty || labels.count == config.numClasses else {
            throw ConfigError(config.name, "\(labels.count) labels for \(config.numClasses) classes")
        }
        self.init(config: config, network: network, labels: labels)
    }

    /// A detector around an already built network.
    public init(config: DetectionConfig, network: EfficientDet, labels: [String] = []) {
        self.config = config
        self.network = network
        self.labels = labels
        anchors = AnchorGrid(config: config)
        preprocessing = DetectionPreprocessing(config: config)
    }

    /// What `detect` found, as labelled boxes to draw ("label score", a colour per class).
    public func annotations(_ detections: [Detection]) -> [BoxAnnotation] {
        detections.map {
            BoxAnnotation(box: $0.box, label: "\(label($0.classIndex)) \(String(format: "%.2f", $0.score))",
                          colour: RGB.forClass($0.classIndex), score: $0.score)
        }
    }

    /// The label of a class index (its number when there are no labels).
    public func label(_ classIndex: Int) -> String {
        classIndex < labels.count ? labels[classIndex] : String(classIndex)
    }

    /// Detections for a picture of any size, boxes in its pixels, clipped to it. The memory the
    /// network needs is reserved first (`NetworkMemory`, `MemoryBudget`): `MemoryShortage` when
    /// the process cannot have it.
    public func detect(_ image: RGBImage, postProcessing: PostProcessing = PostProcessing()) throws -> [Detection] {
        let bytes = NetworkMemory.additionalBytes(perMegapixelMB: NetworkMemory.detectorPerMegapixelMB(model: config.name),
                                                  networkPixels: preprocessing.width * preprocessing.height,
                                                  picturePixels: image.width * image.height)
        return try MemoryBudget.withReservation(bytes, for: "detecting with \(config.name) at \(preprocessing.width)x\(preprocessing.height)") {
            try detectNow(image, postProcessing: postProcessing)
        }
    }

    private func detectNow(_ image: RGBImage, postProcessing: PostProcessing) throws -> [Detection] {
        let (canvas, imageScale) = try preprocessing.letterbox(image)
        let (classes, boxes) = try network(canvas.tensor(mean: preprocessing.mean, std: preprocessing.std))
        let scale = Float(imageScale)
        return try postProcessing.detections(
            classes: classes, boxes: boxes, anchors: anchors, numClasses: config.numClasses, imageScale: scale,
            clipSize: (Float(image.width) / scale, Float(image.height) / scale))
    }
}
