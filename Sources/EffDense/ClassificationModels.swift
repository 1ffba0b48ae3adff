import EffCore
import EffImage
import EffWeights
import Foundation

/// timm's evaluation pre-processing: resize the shorter side to floor(size / cropPct) (Pillow
/// resampling), centre-crop size x size, scale to 0...1, normalise with mean / std.
public struct ClassifierPreprocessing: Sendable, Equatable {
    public var inputSize: Int
    public var cropPct: Double
    public var mean: [Float]
    public var std: [Float]
    public var filter: ResampleFilter
    /// The shorter side before the crop when a library names it (torchvision's `resize_size`);
    /// nil: floor(inputSize / cropPct), as timm computes it.
    public var resizeSize: Int?

    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    public init(inputSize: Int, cropPct: Double = 0.875, mean: [Float] = imagenetMean, std: [Float] = imagenetStd,
                filter: ResampleFilter = .bicubic) {
        self.inputSize = inputSize; self.cropPct = cropPct; self.mean = mean; self.std = std; self.filter = filter
    }

    /// The [1, size, size, 3] network input for a picture.
    public func tensor(for image: RGBImage) throws -> Tensor {
        guard cropPct > 0, cropPct <= 1 else {
            throw TensorError("preprocessing", "crop percentage must be in (0, 1], found \(cropPct)")
        }
        let scaleSize = resizeSize ?? Int((Double(inputSize) / cropPct).rounded(.down))
        // torchvision Resize(int): the shorter side becomes scaleSize, the longer int(scaleSize * long / short).
        let (width, height): (Int, Int) = image.width <= image.height
            ? (scaleSize, Int(Double(scaleSize * image.height) / Double(image.width)))
            : (Int(Double(scaleSize * image.width) / Double(image.height)), scaleSize)
        let resized = try image.resized(width: width, height: height, filter: filter)
        return try resized.centerCropped(width: inputSize, height: inputSize).tensor(mean: mean, std: std)
    }
}

/// A named classification model: its architecture and the pre-processing its weights expect.
public struct ClassificationModel: Sendable {
    public let name: String
    public var architecture: EfficientNetArchitecture
    public var preprocessing: ClassifierPreprocessing

    /// The model used when none is named: the real ImageNet EfficientNet-Lite0.
    public static let defaultName = "tf_efficientnet_lite0"

    /// The reference libraries' names: timm's `tf_efficientnet_b0…b7`, `efficientnet_b0…b7`,
    /// `tf_efficientnet_lite0…4`, `efficientnet_lite0`, and lukemelas' `efficientnet-b0…b7`,
    /// `efficientnet-lite0…4`.
    public static func named(_ name: String) throws -> ClassificationModel {
        // (width, depth, input size, timm crop_pct) of B0…B7 and Lite0…4.
        let b: [(Double, Double, Int, Double)] = [(1.0, 1.0, 224, 0.875), (1.0, 1.1, 240, 0.882), (1.1, 1.2, 260, 0.890),
                                                  (1.2, 1.4, 300, 0.904), (1.4, 1.8, 380, 0.922), (1.6, 2.2, 456, 0.934),
                                                  (1.8, 2.6, 528, 0.942), (2.0, 3.1, 600, 0.949)]
        let lite: [(Double, Double, Int, Double)] = [(1.0, 1.0, 224, 0.875), (1.0, 1.1, 240, 0.882), (1.1, 1.2, 260, 0.890),
                                                     (1.2, 1.4, 280, 0.904), (1.4, 1.8, 300, 0.920)]
        func parse(_ prefix: String, count: Int) -> Int? {
            guard name.hasPrefix(prefix), let i = Int(name.dropFirst(prefix.count)), (0..<count).contains(i) else { return nil }
            return i
        }
        func model(_ row: (Double, Double, Int, Double), _ flavour: EfficientNetArchitecture.Flavour, lite isLite: Bool,
                   mean: [Float] = ClassifierPreprocessing.imagenetMean, std: [Float] = ClassifierPreprocessing.imagenetStd) -> ClassificationModel {
            ClassificationModel(name: name,
                                architecture: EfficientNetArchitecture(width: row.0, depth: row.1, flavour: flavour, isLite: isLite),
                                preprocessing: ClassifierPreprocessing(inputSize: row.2, cropPct: row.3, mean: mean, std: std))
        }
        let half: [Float] = [0.5, 0.5, 0.5]
        if let i = parse("tf_efficientnet_b", count: 8) { return model(b[i], .tensorflow, lite: false) }
        if let i = parse("efficientnet_b", count: 8) { return model(b[i], .pytorch, lite: false) }
        // lukemelas' models pad statically for their nominal size (= the input size here).
        func lukemelas(_ model: ClassificationModel) -> ClassificationModel {
            var model = model
            model.architecture.staticPaddingImageSize = model.preprocessing.inputSize
            model.architecture.firstBlockOfStageHasSkip = false
            return model
        }
        if let i = parse("efficientnet-b", count: 8) { return lukemelas(model(b[i], .tensorflow, lite: false)) }
        if let i = parse("tf_efficientnet_lite", count: 5) { return model(lite[i], .tensorflow, lite: true, mean: half, std: half) }
        if let i = parse("efficientnet-lite", count: 5) { return lukemelas(model(lite[i], .tensorflow, lite: true, mean: half, std: half)) }
        if name == "efficientnet_lite0" { return model(lite[0], .pytorch, lite: true) }
        if let i = parse("torchvision_efficientnet_b", count: 8) {
            // torchvision's IMAGENET1K_V1 transforms: (resize, crop), bicubic; BatchNorm eps 1e-3 for B5–B7.
            let sizes = [(256, 224), (256, 240), (288, 288), (320, 300), (384, 380), (456, 456), (528, 528), (600, 600)]
            var spec = model(b[i], .pytorch, lite: false)
            spec.preprocessing.inputSize = sizes[i].1
            spec.preprocessing.resizeSize = sizes[i].0
            spec.preprocessing.cropPct = Double(sizes[i].1) / Double(sizes[i].0)
            spec.architecture.batchNormEps = i >= 5 ? 1e-3 : 1e-5
            spec.architecture.headIsFourTimesLastStage = true
            return spec
        }
        throw TensorError("model", "unknown classification model '\(name)' (known: tf_efficientnet_b0…b7, efficientnet_b0…b7, tf_efficientnet_lite0…4, efficientnet_lite0, efficientnet-b0…b7, efficientnet-lite0…4, torchvision_efficientnet_b0…b7)")
    }
}

/// One class and its probability.
public struct ClassPrediction: Sendable, Equatable {
    public let classIndex: Int
    public let label: String
    public let score: Float
}

/// An image classifier: pre-processing, EfficientNet, softmax, top-k.
public struct ImageClassifier: Sendable {
    public let model: ClassificationModel
    public let network: EfficientNet
    public var preprocessing: ClassifierPreprocessing
    public let labels: [String]

    /// Loads `model` with the weights in `weightsFile` (any supported format and key layout,
    /// bound strictly) and the class names in `labels`.
    public init(model: ClassificationModel, weightsFile: String, labels: [String]) throws {
        try self.init(model: model, weights: WeightStore(contentsOf: weightsFile), labels: labels)
    }

    /// Loads `model` with the weights of an opened checkpoint.
    public init(model: ClassificationModel, weights store: WeightStore, labels: [String]) throws {
        let weightsFile = store.file
        let binder = WeightBinder(store)
        var model = model
        // A torchvision state dict named as timm / lukemelas name its B-level: torchvision's own
        // model of that level (its BatchNorm eps and pre-processing), width kept.
        if store.layout == .torchvision, !model.name.hasPrefix("torchvision_"), let level = model.name.last.flatMap({ Int(String($0)) }),
           model.name.contains("efficientnet") && !model.name.contains("lite") {
            var torchvision = try ClassificationModel.named("torchvision_efficientnet_b\(level)")
            torchvision.architecture.widthMultiplier = model.architecture.widthMultiplier
            model = torchvision
        }
        var architecture = model.architecture
        let classifierNames = ["classifier.weight", "_fc.weight", "classifier.1.weight"]
        if let classifier = store.infos.first(where: { info in classifierNames.contains { info.name.hasSuffix($0) } }),
           classifier.shape.count == 2 {
            architecture.numClasses = classifier.shape[0]
        }
        network = try EfficientNet(architecture: architecture, weights: binder, keys: EfficientNetKeys(for: store.layout))
        try binder.finish()
        guard labels.isEmpty || labels.count == architecture.numClasses else {
            throw WeightsError(.shapeMismatch, weightsFile, "the classifier has \(architecture.numClasses) classes, the label list \(labels.count)")
        }
        self.model = model
        self.preprocessing = model.preprocessing
        self.labels = labels
    }

    /// The `top` most probable classes for a picture.
    public func classify(_ image: RGBImage, top: Int = 5) throws -> [ClassPrediction] {
        let logits = try network.logits(preprocessing.tensor(for: image))
        let probabilities = try softmaxChannels(logits).scalars
        guard probabilities.allSatisfy(\.isFinite) else {
            throw TensorError("classify", "the network's outputs are not finite numbers (NaN or infinity): the weights overflow float32")
        }
        return probabilities.enumerated().sorted { $0.element > $1.element }.prefix(max(0, top)).map {
            ClassPrediction(classIndex: $0.offset, label: $0.offset < labels.count ? labels[$0.offset] : String($0.offset),
                            score: $0.element)
        }
    }
}
