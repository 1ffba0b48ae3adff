import ArgumentParser
import EffBatch
import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation

struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Classify pictures with an EfficientNet (ImageNet classes by default).")

    @OptionGroup var inputs: BatchOptions

    @Option(help: "Model name (timm / lukemelas / torchvision names: tf_efficientnet_lite0, tf_efficientnet_b0, efficientnet_b0, efficientnet-b0, ...). Default: the model --weights holds, else tf_efficientnet_lite0.")
    var model: String?

    @Option(help: "Checkpoint file (.pth/.pt/.bin/.safetensors). Default: the bundled real Lite0 for tf_efficientnet_lite0, else the cache filled by `effdense weights pull`.")
    var weights: String?

    @Option(help: "How many classes to report per picture.")
    var top = 5

    @Option(help: "Write JSON Lines to FILE ('-' for standard output).")
    var json: String?

    @Option(help: "Crop percentage of timm's evaluation pre-processing, 0.1...1 (default: the model's).")
    var cropPct: Double?

    @Option(help: "Normalisation mean R,G,B (default: the model's).")
    var mean: String?

    @Option(help: "Normalisation std R,G,B (default: the model's).")
    var std: String?

    @Option(help: "Class names, one per line (default: configs/imagenet_classes.txt).")
    var labels: String?

    @OptionGroup var videos: VideoOptions

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if top < 1 { throw ValidationError("--top must be at least 1, found \(top)") }
        // timm's own values lie within 0.8...1; below 0.1 the picture would be enlarged more than 10x.
        if let cropPct, !(cropPct >= 0.1 && cropPct <= 1) { throw ValidationError("--crop-pct must be within 0.1...1, found \(cropPct)") }
        _ = try parseTriple(mean, "--mean")
        if let s = try parseTriple(std, "--std"), s.contains(0) { throw ValidationError("--std values must not be 0") }
    }

    func run() throws {
        runtime.apply()
        let run = try PictureRun(inputs, json: json, outDir: nil, outputSuffixes: [], ownSuffixes: ownOutputSuffixes, takesVideos: true,
                                 reads: [(weights, "the --weights checkpoint"), (labels, "the --labels file")])
        // The checkpoint decides the model unless --model says it.
        let store = try weights.map(WeightStore.init(contentsOf:))
        var modelName = model ?? ClassificationModel.defaultName
        if let store {
            modelName = try ModelChoice.resolve(
                flagged: model, flag: "--model", store: store, what: "an EfficientNet classifier",
                recognisedName: { if case .classifier(let name, _) = $0 { return name }; return nil },
                sameStructure: { ModelRecognition.structure($0) == ModelRecognition.structure($1) }) ?? modelName
        }
        let spec = try ClassificationModel.named(modelName)
        let labelFile = try labels ?? ProjectFiles.locate("configs/imagenet_classes.txt")?.path
            ?? { throw ConfigError("configs/imagenet_classes.txt", "not found; pass --labels FILE, install effdense with scripts/install.sh, or set EFFDENSE_HOME to the effdense folder") }()
        var classifier = try ImageClassifier(model: spec, weights: store ?? WeightStore(contentsOf: defaultWeights(for: spec.name)),
                                             labels: ProjectFiles.labels(labelFile))
        if let cropPct {
            classifier.preprocessing.cropPct = cropPct
            classifier.preprocessing.resizeSize = nil
        }
        if let mean = try parseTriple(mean, "--mean") { classifier.preprocessing.mean = mean }
        if let std = try parseTriple(std, "--std") { classifier.preprocessing.std = std }

        let top = self.top, stride = videos.vidStride
        let fields = { (image: RGBImage) throws -> (json: [String: Any], predictions: [ClassPrediction]) in
            let predictions = try classifier.classify(image, top: top)
            return (["model": spec.name,
                     "predictions": predictions.map { ["class_index": $0.classIndex, "label": $0.label, "score": Double($0.score)] as [String: Any] }],
                    predictions)
        }
        // A video: each frame's top classes, one line per frame.
        let classifyVideo = { (video: InputPicture) throws -> PictureRecord in
            try run.runVideo(video, stride: stride, outputs: []) { frame in FrameResult(json: try fields(frame.image).json, pictures: []) }
        }
        try run.run(video: classifyVideo) { picture, image in
            let (json, predictions) = try fields(image)
            return PictureRecord(json: json.merging(["image": picture.path]) { $1 }, message: ([picture.path] + predictions.map { String(format: "  %6.3f  %@ (%d)", $0.score, $0.label, $0.classIndex) })
                .joined(separator: "\n"))
        }
    }

    private func defaultWeights(for name: String) throws -> String {
        if ["tf_efficientnet_lite0", "efficientnet-lite0"].contains(name) {
            // The real Lite0: fetched into the checkout (scripts/fetch-weights.sh) or installed
            // into the user cache (scripts/install.sh).
            let file = "efficientnet-lite0-57934424.pth"
            if let bundled = ProjectFiles.locate("weights/" + file) { return bundled.path }
            let cached = CheckpointRegistry.cacheDirectory.appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: cached.path) { return cached.path }
        }
        if CheckpointRegistry.canonicalName(name) != nil, let cached = try? CheckpointRegistry.cachedFile(for: name),
           FileManager.default.fileExists(atPath: cached.path) {
            return cached.path
        }
        throw ValidationError("no weights for \(name): pass --weights FILE, or run `effdense weights pull \(name)`"
            + (name.hasSuffix("lite0") ? " (or scripts/fetch-weights.sh for the bundled Lite0)" : ""))
    }
}

func parseTriple(_ text: String?, _ flag: String) throws -> [Float]? {
    guard let text else { return nil }
    let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
    guard values.count == 3, values.allSatisfy({ $0 != nil }) else {
        throw ValidationError("\(flag) needs three comma-separated numbers R,G,B, found '\(text)'")
    }
    return values.compactMap { $0 }
}

/// What effdense writes beside pictures; folder walks leave these out.
let ownOutputSuffixes = [".detections.png", ".mask.png", ".mask.tif", ".overlay.png", ".detections.mp4", ".mask.mkv", ".overlay.mp4"]
