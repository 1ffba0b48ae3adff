import ArgumentParser
import EffCore
import EffDense
import EffImage
import EffWeights
import Foundation

struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Classify pictures with an EfficientNet (ImageNet classes by default).")

    @Argument(help: "PNG or JPEG pictures.")
    var images: [String]

    @Option(help: "Model name (timm / lukemelas names: tf_efficientnet_lite0, tf_efficientnet_b0, efficientnet_b0, efficientnet-b0, ...).")
    var model = ClassificationModel.defaultName

    @Option(help: "Checkpoint file (.pth/.pt/.bin/.safetensors). Default: the bundled real Lite0 for tf_efficientnet_lite0, else the cache filled by `effdense weights pull`.")
    var weights: String?

    @Option(help: "How many classes to report per picture.")
    var top = 5

    @Option(help: "Write JSON Lines to FILE ('-' for standard output).")
    var json: String?

    @Option(help: "Crop percentage of timm's evaluation pre-processing (default: the model's).")
    var cropPct: Double?

    @Option(help: "Normalisation mean R,G,B (default: the model's).")
    var mean: String?

    @Option(help: "Normalisation std R,G,B (default: the model's).")
    var std: String?

    @Option(help: "Class names, one per line (default: configs/imagenet_classes.txt).")
    var labels: String?

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one picture") }
        if top < 1 { throw ValidationError("--top must be at least 1, found \(top)") }
        if let cropPct, !(cropPct > 0 && cropPct <= 1) { throw ValidationError("--crop-pct must be in (0, 1], found \(cropPct)") }
        _ = try parseTriple(mean, "--mean")
        if let s = try parseTriple(std, "--std"), s.contains(0) { throw ValidationError("--std values must not be 0") }
    }

    func run() throws {
        runtime.apply()
        let spec = try ClassificationModel.named(model)
        let weightsFile = try weights ?? defaultWeights(for: spec.name)
        let labelFile = try labels ?? ProjectFiles.locate("configs/imagenet_classes.txt")?.path
            ?? { throw ConfigError("configs/imagenet_classes.txt", "not found; pass --labels FILE or set EFFDENSE_HOME to the effdense folder") }()
        var classifier = try ImageClassifier(model: spec, weightsFile: weightsFile, labels: ProjectFiles.labels(labelFile))
        if let cropPct { classifier.preprocessing.cropPct = cropPct }
        if let mean = try parseTriple(mean, "--mean") { classifier.preprocessing.mean = mean }
        if let std = try parseTriple(std, "--std") { classifier.preprocessing.std = std }

        var output = JSONLines(json)
        try forEachPicture(images, json: &output) { path, output in
            let predictions = try classifier.classify(ImageCodec.decode(contentsOf: path), top: top)
            try output.add([
                "image": path, "model": spec.name,
                "predictions": predictions.map { ["class_index": $0.classIndex, "label": $0.label, "score": Double($0.score)] as [String: Any] },
            ])
            if !output.toStandardOutput {
                print(path)
                for p in predictions { print(String(format: "  %6.3f  %@ (%d)", p.score, p.label, p.classIndex)) }
            }
        }
    }

    private func defaultWeights(for name: String) throws -> String {
        if ["tf_efficientnet_lite0", "efficientnet-lite0"].contains(name),
           let bundled = ProjectFiles.locate("weights/efficientnet-lite0-57934424.pth") {
            return bundled.path
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

/// Writes command output atomically (temporary file, then rename), refusing to replace an input.
enum OutputFile {
    static func write(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ValidationError("\(path): cannot write the output (\(error.localizedDescription))")
        }
    }

    /// `explicit` (-o), else DIR/NAME<suffix> (--out-dir), else NAME<suffix> beside the input;
    /// never the input itself.
    static func path(for input: String, suffix: String, explicit: String?, folder: String?) throws -> String {
        let name = ((input as NSString).lastPathComponent as NSString).deletingPathExtension + suffix
        let target = explicit ?? folder.map { ($0 as NSString).appendingPathComponent(name) }
            ?? ((input as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
        guard URL(fileURLWithPath: target).standardizedFileURL.resolvingSymlinksInPath()
                != URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath() else {
            throw ValidationError("\(target): refusing to overwrite the input")
        }
        return target
    }
}

/// Runs `body` for each picture; a picture that fails (unreadable, corrupt, too large) is reported
/// on stderr and as an `{"image", "error"}` JSON line, and the others still run. Throws at the end
/// (exit status 1) when any failed; a failure that is not the picture's own stops at once. A lone
/// picture's failure is just its own one-line error.
func forEachPicture(_ paths: [String], json: inout JSONLines, _ body: (String, inout JSONLines) throws -> Void) throws {
    if paths.count == 1, let path = paths.first {
        try body(path, &json)
        try json.finish()
        return
    }
    var failures = 0
    for path in paths {
        do {
            try body(path, &json)
        } catch let error as ImageError {
            failures += 1
            FileHandle.standardError.write(Data("effdense: \(error)\n".utf8))
            try json.add(["image": path, "error": error.description])
        }
    }
    try json.finish()
    if failures > 0 {
        throw PicturesFailed(failed: failures, total: paths.count)
    }
}

/// Some pictures of a run could not be processed (each was reported already).
struct PicturesFailed: Error, CustomStringConvertible {
    let failed: Int, total: Int
    var description: String { "\(failed) of \(total) pictures failed (reported above)" }
}

/// `--json FILE|-`: one object per picture, to standard output as it comes or to FILE at the end.
struct JSONLines {
    let destination: String?
    private var lines: [String] = []

    init(_ destination: String?) { self.destination = destination }

    /// Whether the lines go to standard output (so human-readable output should stay quiet).
    var toStandardOutput: Bool { destination == "-" }

    mutating func add(_ record: [String: Any]) throws {
        let line = String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self)
        if toStandardOutput { print(line) } else { lines.append(line) }
    }

    func finish() throws {
        if let destination, !toStandardOutput {
            try OutputFile.write(lines.map { $0 + "\n" }.joined(), to: destination)
        }
    }
}
