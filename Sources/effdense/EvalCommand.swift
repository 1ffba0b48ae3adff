import ArgumentParser
import EffBatch
import EffCore
import EffDense
import EffEval
import EffImage
import Foundation

/// `effdense eval detect` / `eval segment`: a ported checkpoint's scores, computed as the
/// reference tools compute them (pycocotools' COCOeval, smp / mmseg IoU).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a detector (COCO mAP, as pycocotools) or a segmenter (IoU, as smp / mmseg) on annotated pictures.",
        subcommands: [Detect.self, Segment.self])

    /// Options of both: several pictures at once, threads, the JSON report.
    struct Common: ParsableArguments {
        @Option(help: ArgumentHelp("Write the metrics as one JSON object to FILE ('-' for standard output).", valueName: "FILE"))
        var json: String?

        @Option(help: ArgumentHelp("Pictures worked on at once (default: threads, at most 4).", valueName: "N"))
        var batchSize: Int?

        @OptionGroup var runtime: RuntimeOptions

        func validate() throws {
            if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1, found \(batchSize)") }
        }

        /// Runs `work` over `pictures` several at once, records in input order; a picture that
        /// is missing or broken is reported on stderr and left out. Returns how many failed.
        func run<Record>(_ pictures: [InputPicture], _ work: @escaping (InputPicture) throws -> Record,
                         record: @escaping (InputPicture, Record) throws -> Void) throws -> Int {
            let threads = Threading.threadCount
            let atOnce = max(1, min(batchSize ?? min(threads, 4), pictures.count))
            let summary = try BatchRunner(concurrentPictures: atOnce).run(
                pictures,
                process: { picture in try Threading.withThreadLimit(max(1, threads / atOnce)) { try work(picture) } },
                record: record,
                report: { _, error in
                    FileHandle.standardError.write(Data("effdense: \(EffDenseCommand.oneLine("\(error)")) (left out)\n".utf8))
                })
            return summary.failed
        }

        /// Before any work: the --json report and `outputs` land on none of the files read nor on
        /// each other.
        func checkOutputs(reads: [(path: String?, role: String)], outputs: [(path: String?, role: String)] = []) throws {
            let paths = PathGuard()
            for read in reads { if let path = read.path { paths.reads(path, as: read.role) } }
            for output in outputs + [(json == "-" ? nil : json, "the --json report")] {
                if let path = output.path { try paths.writes(path, as: output.role) }
            }
        }

        /// Writes the report to --json (a file written whole, or standard output), checked by
        /// `checkOutputs` first.
        func write(_ report: [String: Any]) throws {
            guard let json else { return }
            var data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys, .withoutEscapingSlashes])
            data.append(UInt8(ascii: "\n"))
            if json == "-" {
                FileHandle.standardOutput.write(data)
                return
            }
            try ImageCodec.writeFiles([(data, json)])
        }
    }

    struct Detect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "COCO box mAP of a detector over annotated pictures (or of a COCO results file), as pycocotools' COCOeval.")

        @Option(help: ArgumentHelp("COCO annotation file (instances_val2017.json).", valueName: "FILE"))
        var annotations: String

        @Option(help: ArgumentHelp("Folder holding the annotated pictures (their file_name relative to it).", valueName: "DIR"))
        var images: String?

        @Option(help: ArgumentHelp("Score this COCO results file instead of running a detector.", valueName: "FILE"))
        var results: String?

        @Option(help: ArgumentHelp("Also write the detections as a COCO results file (xywh, full precision).", valueName: "FILE"))
        var saveResults: String?

        @Option(help: ArgumentHelp("How class indices become category ids: 'ids' (index + 1, effdet's COCO models: 90 classes for ids 1...90), 'order' (the i-th category by id, for a head trained on exactly the dataset's categories) or 'auto'.", valueName: "MAP"))
        var categoryMap = "auto"

        @OptionGroup var detector: DetectorOptions
        @OptionGroup var common: Common

        func validate() throws {
            if (images == nil) == (results == nil) { throw ValidationError("give --images DIR (run the detector) or --results FILE (score a results file)") }
            if !["auto", "ids", "order"].contains(categoryMap) { throw ValidationError("--category-map must be auto, ids or order, found '\(categoryMap)'") }
        }

        func run() throws {
            common.runtime.apply()
            let truth = try COCOGroundTruth(contentsOf: annotations)
            let pictures = images.map { folder in truth.images.map { InputPicture(path: PathText.join(folder, $0.fileName), relativePath: $0.fileName) } } ?? []
            try common.checkOutputs(reads: detector.reads + [(annotations, "the --annotations file"), (results, "the --results file")]
                                        + pictures.map { ($0.path, "the annotated picture") },
                                    outputs: [(saveResults, "the --save-results file")])
            let detections: [COCODetection]
            var imageIDs: [Int]?
            var left = 0
            if let results {
                detections = try COCODetection.read(contentsOf: results, groundTruth: truth)
            } else {
                let (model, config) = try detector.load()
                let toCategory = try categoryMapping(classes: config.numClasses, truth: truth)
                // effdet's validate.py: at most 100 a picture, scores from 0.001.
                let settings = PostProcessing(maxDetectionPoints: config.maxDetectionPoints, maxDetections: 100,
                                              iouThreshold: 0.5, scoreThreshold: 0.001)
                var found: [COCODetection] = [], evaluated: [Int] = []
                let ids = Dictionary(zip(pictures.map(\.path), truth.images.map(\.id)), uniquingKeysWith: { a, _ in a })
                left = try common.run(pictures, { picture in
                    try model.detect(ImageCodec.decode(contentsOf: picture.path), postProcessing: settings)
                }, record: { picture, boxes in
                    guard let id = ids[picture.path] else { return }
                    evaluated.append(id)
                    for box in boxes {
                        guard let category = toCategory(box.classIndex) else { continue }
                        let x = Double(box.box[0]), y = Double(box.box[1])
                        found.append(COCODetection(imageID: id, categoryID: category, box: [x, y, Double(box.box[2]) - x, Double(box.box[3]) - y],
                                                   score: Double(box.score)))
                    }
                })
                detections = found
                imageIDs = evaluated
            }
            if let saveResults {
                try ImageCodec.writeFiles([(try COCODetection.resultsJSON(detections), saveResults)])
            }
            let evaluation = COCOEvaluation(groundTruth: truth, detections: detections, imageIDs: imageIDs)
            if common.json != "-" {
                print(evaluation.summary.joined(separator: "\n"))
                print("")
                print(Self.table(evaluation))
            }
            let names = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]
            try common.write([
                "annotations": annotations, "images_evaluated": evaluation.imageIDs.count, "detections": detections.count,
                "pictures_left_out": left, "stats": Dictionary(uniqueKeysWithValues: zip(names, evaluation.stats)), "stats_list": evaluation.stats,
                "per_category": evaluation.perCategoryAP.map { ["category_id": $0.categoryID, "name": $0.name, "ap": $0.ap] as [String: Any] },
            ])
            if left > 0 { throw PicturesLeftOut(count: left) }
        }

        /// Class index → category id ('ids': index + 1; 'order': sorted category ids).
        func categoryMapping(classes: Int, truth: COCOGroundTruth) throws -> (Int) -> Int? {
            let sorted = truth.categories.map(\.id).sorted()
            let maximum = sorted.last ?? 0
            var map = categoryMap
            if map == "auto" { map = classes >= maximum ? "ids" : classes == sorted.count ? "order" : "" }
            switch map {
            case "ids": return { $0 + 1 }
            case "order":
                guard classes == sorted.count else {
                    throw ValidationError("--category-map order: the model has \(classes) classes, the annotations \(sorted.count) categories")
                }
                return { $0 < sorted.count ? sorted[$0] : nil }
            default:
                throw ValidationError("the model's \(classes) classes match neither the category ids (1...\(maximum)) nor the \(sorted.count) categories: pass --category-map ids or order")
            }
        }

        static func table(_ evaluation: COCOEvaluation) -> String {
            let width = max(8, evaluation.perCategoryAP.map { $0.name.count }.max() ?? 8)
            var lines = ["category".padding(toLength: width, withPad: " ", startingAt: 0) + "      id      AP"]
            for row in evaluation.perCategoryAP where row.ap >= 0 {
                lines.append(row.name.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "  %6d%8.4f", row.categoryID, row.ap))
            }
            let absent = evaluation.perCategoryAP.filter { $0.ap < 0 }.count
            if absent > 0 { lines.append("(\(absent) \(absent == 1 ? "category" : "categories") without ground truth in these images: left out of the means)") }
            return lines.joined(separator: "\n")
        }
    }

    struct Segment: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-class IoU, mIoU and pixel accuracy of a segmenter over pictures and their ground-truth masks.")

        @Option(help: ArgumentHelp("Folder of ground-truth masks: NAME.png (or NAME.mask.png; palette or 8-bit gray class indices) for each picture NAME.*.", valueName: "DIR"))
        var masks: String

        @Option(help: ArgumentHelp("Folder of pictures to segment.", valueName: "DIR"))
        var images: String?

        @Option(help: ArgumentHelp("Score these predicted masks (NAME.mask.png or NAME.png, e.g. an `effdense segment --out-dir` run) instead of running a model.", valueName: "DIR"))
        var predictions: String?

        @Option(help: "Ground-truth value left out of the counts (VOC's border); -1 for none.")
        var ignoreIndex = 255

        @OptionGroup var segmenter: SegmenterOptions
        @OptionGroup var common: Common

        func validate() throws {
            if (images == nil) == (predictions == nil) { throw ValidationError("give --images DIR (run the segmenter) or --predictions DIR (score masks)") }
            if predictions != nil && segmenter.numClasses == nil { throw ValidationError("--predictions needs --num-classes") }
        }

        func run() throws {
            common.runtime.apply()
            let source = images ?? predictions ?? "."
            let collector = InputCollector(recursive: false, excludedSuffixes: [], picturesByName: true)
            var pictures = try collector.collect(arguments: [source])
            if predictions != nil {
                // NAME.mask.png is preferred when both NAME.mask.png and NAME.png exist.
                let stems = Set(pictures.map { PathText.lastComponent($0.path) }.filter { $0.hasSuffix(".mask.png") })
                pictures = pictures.filter { !stems.contains(PathText.deletingExtension(PathText.lastComponent($0.path)) + ".mask.png") }
            }
            guard !pictures.isEmpty else { throw ValidationError("no pictures found in \(source)") }
            try common.checkOutputs(reads: segmenter.reads + pictures.map { ($0.path, "a picture scored") })
            let model = images == nil ? nil : try segmenter.load()
            let classes = segmenter.numClasses ?? model?.network.numClasses ?? 1
            var metrics = SegmentationMetrics(classCount: classes, ignoreIndex: ignoreIndex >= 0 ? ignoreIndex : nil)
            let masks = self.masks
            let left = try common.run(pictures, { picture -> [UInt8] in
                var stem = PathText.deletingExtension(PathText.lastComponent(picture.path))
                if stem.hasSuffix(".mask") { stem = String(stem.dropLast(5)) }
                // VOC's NAME.png, or NAME.mask.png as `effdense segment` names masks.
                let plain = PathText.join(masks, stem + ".png"), own = PathText.join(masks, stem + ".mask.png")
                let truth = try ImageCodec.decodeIndexed(contentsOf: FileManager.default.fileExists(atPath: plain) || !FileManager.default.fileExists(atPath: own) ? plain : own)
                let predicted: [UInt8]
                let (width, height): (Int, Int)
                if let model {
                    let mask = try model.segment(ImageCodec.decode(contentsOf: picture.path))
                    (predicted, width, height) = (mask.classes, mask.width, mask.height)
                } else {
                    let mask = try ImageCodec.decodeIndexed(contentsOf: picture.path)
                    (predicted, width, height) = (mask.indices, mask.width, mask.height)
                }
                guard width == truth.width, height == truth.height else {
                    throw ImageError(.invalidArgument, picture.path, "\(width)x\(height), its ground-truth mask \(truth.width)x\(truth.height)")
                }
                return predicted + truth.indices
            }, record: { _, pair in
                let half = pair.count / 2
                metrics.add(prediction: Array(pair[..<half]), truth: Array(pair[half...]))
            })
            let labels = model.map { segmenter in (0..<classes).map(segmenter.label) } ?? (0..<classes).map(String.init)
            let iou = metrics.perClassIoU
            if common.json != "-" {
                let width = max(8, labels.map(\.count).max() ?? 8)
                print("class".padding(toLength: width, withPad: " ", startingAt: 0) + "  index      IoU")
                for (c, value) in iou.enumerated() {
                    print(labels[c].padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "  %5d", c)
                          + (value.map { String(format: " %8.4f", $0) } ?? "        -"))
                }
                print(String(format: "mIoU %.4f over %d classes present; pixel accuracy %.4f; smp macro IoU %.4f", metrics.meanIoU,
                             iou.compactMap { $0 }.count, metrics.pixelAccuracy, metrics.smpMacroIoU))
            }
            try common.write([
                "masks": masks, "pictures": pictures.count - left, "pictures_left_out": left, "ignore_index": ignoreIndex,
                "miou": metrics.meanIoU, "pixel_accuracy": metrics.pixelAccuracy, "smp_macro_iou": metrics.smpMacroIoU,
                "per_class": iou.enumerated().map { ["class_index": $0.offset, "label": labels[$0.offset], "iou": $0.element ?? NSNull()] as [String: Any] },
                "confusion": metrics.confusion, "ignored_pixels": metrics.ignoredPixels,
            ])
            if left > 0 { throw PicturesLeftOut(count: left) }
        }
    }
}

/// Some pictures could not be scored (each was reported); the metrics cover the others.
struct PicturesLeftOut: Error, CustomStringConvertible {
    let count: Int
    var description: String { "\(count) \(count == 1 ? "picture" : "pictures") left out of the metrics (reported above)" }
}
