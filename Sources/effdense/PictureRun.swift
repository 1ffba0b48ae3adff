import ArgumentParser
import EffBatch
import EffCore
import EffImage
import EffVideo
import Foundation

/// Input and batch options shared by detect, segment and classify.
struct BatchOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("Pictures (PNG, JPEG, BMP, GIF, WebP, TIFF), videos (MP4, MKV, WebM, AVI, animated GIF... whatever FFmpeg reads), folders of them, or glob patterns (recognised by content, not by extension).", valueName: "input"))
    var images: [String] = []

    @Flag(help: "Also take pictures from the sub-folders of folders given.")
    var recursive = false

    @Option(help: ArgumentHelp("Also take inputs from FILE, one path (or folder, or pattern) per line; '-' reads standard input.", valueName: "FILE"))
    var inputList: String?

    @Option(help: ArgumentHelp("Process only shard I of N (0-based, e.g. 0/4): a stable share of the inputs chosen by path, so N processes cover them once.", valueName: "I/N"))
    var shard: String?

    @Option(help: ArgumentHelp("Name outputs in --out-dir (and choose --shard's share) by each picture's path below DIR, however it was given, as a run over DIR does: for several processes given parts of one corpus as lists (Spark's RDD.pipe).", valueName: "DIR"))
    var inputRoot: String?

    @Flag(help: "Skip pictures whose outputs already exist (and whose line is in --json FILE); keep the finished lines.")
    var resume = false

    @Flag(help: "Ignore the EXIF orientation of JPEGs (as Pillow's Image.open does); by default a photo stored turned is read upright, as OpenCV and ultralytics read it.")
    var ignoreOrientation = false

    @Option(help: ArgumentHelp("Pictures worked on at once, each on its own thread from decoding to writing, the kernels' threads shared between them (default: threads, at most 4; 1: one picture at a time on all threads); in tiled mode, tiles at once.", valueName: "N"))
    var batchSize: Int?

    func validate() throws {
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1, found \(batchSize)") }
        if images.isEmpty && inputList == nil { throw ValidationError("give at least one picture, folder or --input-list FILE") }
        if let shard { _ = try Shard(parsing: shard) }
    }
}

/// How detect, segment and classify treat videos.
struct VideoOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Videos: run every Nth frame only (the output videos then play at the frame rate divided by N).", valueName: "N"))
    var vidStride = 1

    func validate() throws {
        if vidStride < 1 { throw ValidationError("--vid-stride must be at least 1, found \(vidStride)") }
    }
}

/// One run of a command over its pictures: collects the inputs, names the outputs, keeps every
/// output off every input (PathGuard), skips what `--resume` finds done, works on several
/// pictures at once (BatchRunner), writes a JSON line per picture in input order, reports broken
/// pictures and ends with a summary line.
struct PictureRun {
    let options: BatchOptions
    let pictures: [InputPicture]
    let naming: OutputNaming
    let json: JSONLinesOutput
    /// Suffixes of the files written per picture (beside it or under --out-dir), e.g. `.mask.png`.
    let outputSuffixes: [String]
    private let paths: PathGuard

    /// `ownSuffixes`: every suffix the command can write, kept out of folder walks. `takesVideos`:
    /// folders and patterns also give files named as videos. `reads`: the
    /// other files the command reads (checkpoint, config, labels) and `outputs`: the outputs named
    /// by flags (-o, --overlay), each with the words that name it in messages; nil paths are
    /// left out. Nothing is written before every named output is checked against every input.
    init(_ options: BatchOptions, json jsonPath: String?, outDir: String?, outputSuffixes: [String], ownSuffixes: [String], takesVideos: Bool = false,
         reads: [(path: String?, role: String)] = [], outputs: [(path: String?, role: String)] = []) throws {
        self.options = options
        // The JSON file is left out of folder walks unless it is named as a picture: then it IS
        // one of the inputs, and the clash check below refuses to write over it.
        let jsonToLeaveOut = jsonPath.flatMap {
            $0 == "-" || InputCollector.isPictureName(PathText.lastComponent($0)) || takesVideos && InputCollector.isVideoName(PathText.lastComponent($0)) ? nil : $0
        }
        let excluded = [outDir, jsonToLeaveOut].compactMap { $0 }
        let collector = InputCollector(recursive: options.recursive, excludedSuffixes: ownSuffixes, excludedPaths: excluded,
                                       picturesByName: true, videosByName: takesVideos)
        let collected = try collector.collectReportingSkipped(arguments: options.images, inputList: options.inputList)
        let all = try options.inputRoot.map { try InputCollector.placing(collected.pictures, under: $0) } ?? collected.pictures
        guard !all.isEmpty else {
            throw ValidationError("no pictures found in \(options.images.joined(separator: " "))\(options.inputList.map { " or \($0)" } ?? "")")
        }
        paths = PathGuard()
        for picture in all { paths.reads(picture.path, as: "the input picture") }
        if let list = options.inputList, list != "-" { paths.reads(list, as: "the --input-list") }
        for read in reads { if let path = read.path { paths.reads(path, as: read.role) } }
        for output in outputs { if let path = output.path { try paths.writes(path, as: output.role) } }
        if let jsonPath, jsonPath != "-" { try paths.writes(jsonPath, as: "the --json output") }
        Self.reportSkipped(collected.skipped, reason: takesVideos ? "not named as pictures or videos" : "not named as pictures")
        Self.reportSkipped(collected.unreadableNames, reason: "name not valid UTF-8")

        naming = OutputNaming(all, folder: outDir, stemsFromFolders: options.inputRoot != nil)
        let shard = try options.shard.map(Shard.init(parsing:))
        pictures = shard.map { shard in all.filter(shard.contains) } ?? all
        if options.resume && (jsonPath == nil || jsonPath == "-") && outputSuffixes.isEmpty {
            throw ValidationError("--resume needs outputs to look for: --json FILE or written pictures")
        }
        if let outDir {
            do {
                try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            } catch {
                throw ValidationError("\(outDir): cannot create the output folder (\(PathText.existingNonFile(outDir) ?? "permission denied"))")
            }
        }
        json = try JSONLinesOutput(jsonPath, resume: options.resume)
        self.outputSuffixes = outputSuffixes
        // Temporary files a killed run (SIGKILL) left where this one writes.
        var folders = Set(outputs.compactMap { $0.path.map(PathText.parent) })
        if let jsonPath, jsonPath != "-" { folders.insert(PathText.parent(jsonPath)) }
        for picture in pictures { for suffix in outputSuffixes { folders.insert(PathText.parent(naming.path(for: picture, suffix: suffix))) } }
        for folder in folders { AtomicFile.sweepStale(in: folder) }
    }

    private static func reportSkipped(_ skipped: [String], reason: String) {
        guard !skipped.isEmpty else { return }
        let names = skipped.prefix(3).map(PathText.lastComponent).joined(separator: ", ") + (skipped.count > 3 ? ", ..." : "")
        FileHandle.standardError.write(Data("effdense: \(skipped.count) \(skipped.count == 1 ? "file" : "files") skipped: \(reason) (\(EffDenseCommand.oneLine(names)))\n".utf8))
    }

    /// Whether the run is about one picture named on its own (its failure is then just its own
    /// one-line error, with no summary).
    var isSinglePicture: Bool { pictures.count == 1 && options.images.count == 1 && options.inputList == nil && options.shard == nil }

    /// The path of `picture`'s output ending in `suffix`, or `explicit` (-o, --overlay, given
    /// to `init` as an output); never an input or another output. Its folder is created.
    func outputPath(_ picture: InputPicture, suffix: String, explicit: String? = nil) throws -> String {
        let target = explicit ?? naming.path(for: picture, suffix: suffix)
        if explicit == nil {
            do {
                try paths.writes(target, as: "the \(suffix) output of \(picture.path)")
            } catch let clash as OutputClash {
                throw ImageError(.unwritable, target, "refusing to write \(clash.role) there: \(clash.why) \(clash.other)")
            }
        }
        let folder = PathText.parent(target)
        if !folder.isEmpty && !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw ImageError(.unwritable, target, "cannot create the folder \(folder)")
            }
        }
        return target
    }

    /// Runs `process` (network, drawing, writing the picture's files) on each decoded picture,
    /// several pictures at once (--batch-size), and records what it returns in input order: the
    /// JSON line, then the message on standard output (unless the JSON goes there).
    func run(video: ((InputPicture) throws -> PictureRecord)? = nil, _ process: @escaping (InputPicture, RGBImage) throws -> PictureRecord) throws {
        let orientation = !options.ignoreOrientation
        try runEach(video: video) { picture in
            try process(picture, ImageCodec.decode(contentsOf: picture.path, applyingOrientation: orientation))
        }
    }

    /// `run` for a command that reads each picture itself (a large TIFF region by region);
    /// `atOnce` overrides the pictures worked on at once; `suffixes` names the files `--resume`
    /// looks for when they depend on the picture and on whether it is a video (default:
    /// `outputSuffixes`). With `video`,
    /// inputs that are videos (by content) go to it, one at a time with every thread, in their
    /// place in the input order; it streams its frames' lines itself (`runVideo`) and returns
    /// the video's closing record.
    func runEach(atOnce requested: Int? = nil, suffixes: ((_ picture: InputPicture, _ isVideo: Bool) -> [String])? = nil,
                 video: ((InputPicture) throws -> PictureRecord)? = nil,
                 _ process: @escaping (InputPicture) throws -> PictureRecord) throws {
        let single = isSinglePicture
        let json = self.json
        // Recognised by content, each input once.
        let videos = video == nil ? [:] : Dictionary(pictures.map { ($0, VideoFile.isVideo(atPath: $0.path)) }) { first, _ in first }
        // Done: the picture's result line (when the JSON goes to a file) and every file the
        // current flags ask for are present. Anything less runs again, its old line dropped.
        let todo = pictures.filter { picture in
            !(options.resume
                && (json.destination == nil || json.toStandardOutput || json.hasResult(for: picture.path))
                && (suffixes?(picture, videos[picture] ?? false) ?? outputSuffixes).allSatisfy { FileManager.default.fileExists(atPath: naming.path(for: picture, suffix: $0)) })
        }
        try json.startResuming(redoing: Set(todo.map { InputCollector.canonical($0.path) }))
        let threads = Threading.threadCount
        let record = { (record: PictureRecord) throws in
            try json.add(record.json)
            if !json.toStandardOutput { print(record.message) }
        }
        let report = { (picture: InputPicture, error: Error) throws in
            if single { throw error }
            FileHandle.standardError.write(Data("effdense: \(EffDenseCommand.oneLine("\(error)"))\n".utf8))
            try json.add(["image": picture.path, "error": "\(error)"])
        }
        // Consecutive pictures run together; each video runs alone, in its place.
        var total = BatchSummary()
        total.total = pictures.count
        total.skipped = pictures.count - todo.count
        let isVideo = todo.map { videos[$0] ?? false }
        var next = 0
        while next < todo.count {
            if let video, isVideo[next] {
                let start = DispatchTime.now().uptimeNanoseconds
                do {
                    let closing = try Self.asPictureError(todo[next]) { try video(todo[next]) }
                    try record(closing)
                    total.succeeded += 1
                    total.frames += closing.json["frames"] as? Int ?? 0
                } catch let error as ImageError {
                    try report(todo[next], error)
                    total.failed += 1
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                total.videos += 1
                total.seconds += seconds
                total.videoSeconds += seconds
                next += 1
                continue
            }
            var end = next + 1
            while end < todo.count && !isVideo[end] { end += 1 }
            let group = Array(todo[next..<end])
            let atOnce = max(1, min(requested ?? options.batchSize ?? min(threads, 4), group.count))
            let threadsEach = max(1, threads / atOnce)
            let summary = try BatchRunner(concurrentPictures: atOnce).run(
                group,
                process: { picture in try Self.asPictureError(picture) { try Threading.withThreadLimit(threadsEach) { try process(picture) } } },
                record: { _, value in try record(value) },
                report: report)
            total.succeeded += summary.succeeded
            total.failed += summary.failed
            total.seconds += summary.seconds
            next = end
        }
        if single { return }
        total.includesVideos = video != nil && pictures.contains { InputCollector.isVideoName(PathText.lastComponent($0.path)) }
        if total.failed > 0 { throw PicturesFailed(summary: total) }
        FileHandle.standardError.write(Data("effdense: \(total)\n".utf8))
    }

    /// Runs `body` for `picture`, turning the errors that belong to it into its own `ImageError`.
    private static func asPictureError<Result>(_ picture: InputPicture, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as ImageError where ["resize", "crop"].contains(error.source) {
            // A pre-processing step's error is this picture's failure, named by it.
            throw ImageError(error.kind, picture.path, "\(error.source): \(error.problem)")
        } catch let error as TensorError {
            throw ImageError(.invalidArgument, picture.path, "\(error)")
        } catch let shortage as MemoryShortage {
            throw ImageError(.tooLarge, picture.path, "\(shortage)")
        }
    }
}

/// What processing a picture leaves to record in input order: its JSON line and the message
/// printed for it on standard output.
struct PictureRecord {
    var json: [String: Any]
    var message: String
}
