import ArgumentParser
import EffBatch
import EffCore
import EffDense
import EffImage
import EffVideo
import EffWeights
import Foundation

struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Detect objects with EfficientDet; write annotated PNGs and JSON Lines.")

    @OptionGroup var inputs: BatchOptions

    @OptionGroup var detector: DetectorOptions

    @Option(name: .shortAndLong, help: "Annotated PNG to write (one input only); for a video, the annotated video (.mp4, .mkv...).")
    var output: String?

    @Option(help: "Folder for annotated PNGs (IMG.detections.png each, VIDEO.detections.mp4 for videos, mirroring the input folders).")
    var outDir: String?

    @Option(help: "Write JSON Lines to FILE ('-' for standard output).")
    var json: String?

    @Option(help: "Drop detections scoring below this.")
    var scoreThreshold: Float = 0.4

    @Option(help: "IoU above which a box of the same class is suppressed.")
    var iouThreshold: Float = 0.5

    @Option(help: "Keep at most this many detections per picture.")
    var maxDetections = 100

    @Option(help: "Only these classes, by name (comma-separated, e.g. person,dog).")
    var classes: String?

    @Flag(help: "Gaussian soft-NMS instead of hard NMS.")
    var softNms = false

    @Flag(help: "Do not write annotated PNGs (or videos).")
    var noImages = false

    @Option(help: "Box line width in pixels on annotated PNGs (default: scaled to the picture).")
    var lineWidth: Int?

    @Flag(help: "Draw boxes without their label tags.")
    var hideLabels = false

    @Option(help: ArgumentHelp("Detect in tiles of N x N pixels (SAHI-style slices; automatic, N = 1024, for TIFFs, PNGs and JPEGs over 100 megapixels), boxes merged across tiles.", valueName: "N"))
    var tile: Int?

    @Option(help: "Pixels shared by neighbouring tiles (an object smaller than this is seen whole by one of them).")
    var overlap = 128

    @Flag(help: "In tiled mode, skip the extra pass of the whole picture at the network's size (made for pictures decoded whole, to find objects larger than a tile).")
    var noFullPass = false

    @OptionGroup var videos: VideoOptions

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if output != nil && inputs.images.count + (inputs.inputList == nil ? 0 : 1) > 1 { throw ValidationError("-o takes one input; use --out-dir") }
        if output != nil && outDir != nil { throw ValidationError("give -o or --out-dir, not both") }
        if !(0...1).contains(scoreThreshold) { throw ValidationError("--score-threshold must be within 0...1, found \(scoreThreshold)") }
        if !(0...1).contains(iouThreshold) { throw ValidationError("--iou-threshold must be within 0...1, found \(iouThreshold)") }
        if let lineWidth, !(1...100).contains(lineWidth) { throw ValidationError("--line-width must be within 1...100, found \(lineWidth)") }
        if maxDetections < 1 { throw ValidationError("--max-detections must be at least 1, found \(maxDetections)") }
        if let tile, !(64...8192).contains(tile) { throw ValidationError("--tile must be within 64...8192, found \(tile)") }
        if overlap < 0 || overlap >= (tile ?? 1024) / 2 { throw ValidationError("--overlap must be within 0 and half the tile, found \(overlap)") }
    }

    func run() throws {
        runtime.apply()
        let run = try PictureRun(inputs, json: json, outDir: outDir, outputSuffixes: noImages ? [] : [".detections.png"], ownSuffixes: ownOutputSuffixes, takesVideos: true,
                                 reads: detector.reads,
                                 outputs: [(output, "the -o output")])
        if output != nil && run.pictures.count > 1 { throw ValidationError("-o takes one picture, found \(run.pictures.count); use --out-dir") }
        let (detector, detectionConfig) = try self.detector.load()
        let names = detector.labels
        let wanted = try classFilter(names)
        let postProcessing = PostProcessing(maxDetectionPoints: detectionConfig.maxDetectionPoints, maxDetections: maxDetections,
                                            iouThreshold: iouThreshold, scoreThreshold: scoreThreshold, softNMS: softNms)
        let text = noImages ? nil : try TextRenderer()
        let style = AnnotationStyle(lineWidth: lineWidth, showLabels: !hideLabels)
        let explicitOutput = self.output
        let tiled = TiledDetector(detector: detector, tile: tile ?? 1024, overlap: overlap,
                                  concurrentTiles: inputs.batchSize ?? min(Threading.threadCount, 4))
        let forceTiles = tile != nil, fullPass = !noFullPass, orientation = !inputs.ignoreOrientation, stride = videos.vidStride
        let fields = { (detections: [Detection], image: RGBImage) -> [String: Any] in
            ["width": image.width, "height": image.height, "model": detectionConfig.name,
             "detections": Self.json(detections, labelledBy: detector)]
        }
        let noImages = self.noImages
        try run.runEach(
            atOnce: forceTiles ? 1 : nil,
            suffixes: { _, isVideo in noImages ? [] : [isVideo ? ".detections.mp4" : ".detections.png"] },
            video: { video in
                // Every frame (or every stride-th) detected whole; the annotated frames make a video.
                let target = noImages ? nil : try run.outputPath(video, suffix: ".detections.mp4", explicit: explicitOutput)
                // With --tile, each frame is cut in tiles (SAHI on video), one frame at a time.
                return try run.runVideo(video, stride: stride, atOnce: forceTiles ? 1 : nil, outputs: target.map { [($0, .colour)] } ?? []) { frame in
                    let found = forceTiles
                        ? try tiled.detect(PictureSource(frame.image), wholePicture: fullPass ? frame.image : nil, postProcessing: postProcessing)
                        : try detector.detect(frame.image, postProcessing: postProcessing)
                    let detections = found.filter { wanted?.contains($0.classIndex) ?? true }
                    guard let text else { return FrameResult(json: fields(detections, frame.image), pictures: []) }
                    var annotated = frame.image
                    annotated.annotate(detector.annotations(detections), text: text, style: style)
                    return FrameResult(json: fields(detections, frame.image), pictures: [.colour(annotated)])
                }
            }
        ) { picture in
            if forceTiles || LargePicture.isLarge(picture.path) {
                return try Self.detectTiled(picture, tiled: tiled, fullPass: fullPass, postProcessing: postProcessing, wanted: wanted,
                                            run: run, output: explicitOutput, text: text, style: style, model: detectionConfig.name)
            }
            let image = try ImageCodec.decode(contentsOf: picture.path, applyingOrientation: orientation)
            let detections = try detector.detect(image, postProcessing: postProcessing).filter { wanted?.contains($0.classIndex) ?? true }
            var target: String?
            if let text {
                var annotated = image
                annotated.annotate(detector.annotations(detections), text: text, style: style)
                let path = try run.outputPath(picture, suffix: ".detections.png", explicit: explicitOutput)
                try ImageCodec.writePNG(annotated, to: path)
                target = path
            }
            return PictureRecord(json: fields(detections, image).merging(["image": picture.path]) { $1 }, message: "\(picture.path): \(detections.count) detections" + (target.map { " → \($0)" } ?? ""))
        }
    }

    /// Detections as JSON: box (x1, y1, x2, y2), score, class index and label.
    static func json(_ detections: [Detection], labelledBy detector: ObjectDetector) -> [[String: Any]] {
        detections.map {
            ["box": $0.box.map { Double($0) }, "score": Double($0.score), "class_index": $0.classIndex,
             "label": detector.label($0.classIndex)] as [String: Any]
        }
    }

    private func classFilter(_ names: [String]) throws -> Set<Int>? {
        guard let classes else { return nil }
        var wanted = Set<Int>()
        for name in classes.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            if let index = names.firstIndex(of: name) {
                wanted.insert(index)
            } else if let index = Int(name) {
                wanted.insert(index)
            } else {
                throw ValidationError("--classes: unknown class '\(name)'")
            }
        }
        return wanted
    }
}

/// Which detector to run and its files: shared by `detect` and `eval detect`.
struct DetectorOptions: ParsableArguments {
    @Option(help: "Model name: tf_efficientdet_d0 … d7x, efficientdet_d0, efficientdet_d1 (or d0 … d7x), tf_efficientdet_lite0 … lite4. Default: the model --weights holds (its TF-ported name: pass efficientdet_d0/d1 for PyTorch-native checkpoints, whose shapes are the same), else tf_efficientdet_d0.")
    var model: String?

    @Option(help: "A model config YAML (effdet's fields) instead of the shipped one, e.g. for another class count.")
    var config: String?

    @Option(help: "Checkpoint (.pth/.pt/.bin/.safetensors) in effdet's key layout. Default: the official one, fetched into the cache once.")
    var weights: String?

    @Option(help: "Class names, one per line (default: the config's).")
    var labels: String?

    /// The files these options read, for the run's output check.
    var reads: [(path: String?, role: String)] {
        [(weights, "the --weights checkpoint"), (config, "the --config file"), (labels, "the --labels file")]
    }

    /// Loads the detector: the checkpoint decides the model unless --model or --config says it.
    func load() throws -> (ObjectDetector, DetectionConfig) {
        let store = try weights.map(WeightStore.init(contentsOf:))
        var modelName = model ?? "tf_efficientdet_d0"
        var classes: Int?
        if let store, config == nil {
            modelName = try ModelChoice.resolve(
                flagged: model, flag: "--model", store: store, what: "an EfficientDet",
                recognisedName: { if case .detector(let name, let count) = $0 { classes = count; return name }; return nil },
                sameStructure: { ModelRecognition.structure($0) == ModelRecognition.structure($1) }) ?? modelName
        }
        var (detectionConfig, configFile) = try config.map { (try DetectionConfig.load(contentsOf: $0), $0) } ?? DetectionConfig.named(modelName)
        if let classes, classes != detectionConfig.numClasses {
            detectionConfig.numClasses = classes   // a fine-tuned head: its labels come from --labels
            detectionConfig.labels = nil
        }
        let labelFile = labels ?? detectionConfig.labels.map { URL(fileURLWithPath: configFile).deletingLastPathComponent().appendingPathComponent($0).path }
        let names = try labelFile.map(ProjectFiles.labels) ?? []
        let detector = try ObjectDetector(config: detectionConfig, weights: store ?? WeightStore(contentsOf: defaultWeights(for: detectionConfig.name)),
                                          labels: names)
        return (detector, detectionConfig)
    }

    /// The official checkpoint from the cache, fetched first when it is not there.
    private func defaultWeights(for name: String) throws -> String {
        guard CheckpointRegistry.canonicalName(name) != nil else {
            throw ValidationError("no official checkpoint for \(name): pass --weights FILE")
        }
        return try WeightsCommand.Pull.fetch(name)
    }
}
