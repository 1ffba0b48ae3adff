import EffCore
import Foundation

/// `--json FILE|-`: one JSON object per picture (per frame of a video, then a closing line for
/// the video), appended and flushed as each finishes, so a run that is killed keeps every
/// finished result. With `resume`, an existing file's lines of finished inputs are kept (a
/// picture's result line; a video's frame lines and its closing line) and new lines are appended
/// to them; error lines, a line cut off by the kill and the frames of an unfinished video are
/// dropped, since those inputs run again.
public final class JSONLinesOutput {
    public let destination: String?
    /// With `resume`: the lines already in the file of each input, by its canonical path, and
    /// the inputs whose result (a picture's line, a video's closing line) is among them.
    private var resumedLines: [String: [Data]] = [:]
    private var resumedOrder: [String] = []
    private var finishedInputs = Set<String>()
    private let resume: Bool
    private var handle: FileHandle?

    /// Whether the lines go to standard output (so human-readable output should stay quiet).
    public var toStandardOutput: Bool { destination == "-" }

    public init(_ destination: String?, resume: Bool = false) throws {
        self.destination = destination
        self.resume = resume
        guard let destination, destination != "-", resume else { return }
        guard let existing = try? Data(contentsOf: URL(fileURLWithPath: destination)) else { return }
        for line in existing.split(separator: UInt8(ascii: "\n")) {
            guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                  let image = object["image"] as? String else { continue }
            let isFrame = object["frame"] != nil
            // A failed picture or video runs again; a video's corrupt frame is part of its record.
            if object["error"] != nil && !isFrame { continue }
            let key = InputCollector.canonical(image)
            if !isFrame {
                // A picture's result: the last one written wins. A video's closing line ends its frames.
                if finishedInputs.contains(key) && object["frames"] == nil { resumedLines[key] = [] }
                finishedInputs.insert(key)
            }
            if resumedLines[key] == nil { resumedOrder.append(key) }
            resumedLines[key, default: []].append(Data(line))
        }
    }

    /// Whether the file held the result of the input at `path` when the run began (--resume): a
    /// picture's line, or a video's closing line after its frames.
    public func hasResult(for path: String) -> Bool {
        finishedInputs.contains(InputCollector.canonical(path))
    }

    /// With --resume: rewrites the file (atomically) with the result lines it held, less those of
    /// the pictures that will run again (`redone`, canonical paths), so no picture ends with two
    /// lines; new lines are appended after them. Without --resume it does nothing (the file is
    /// replaced at the first line). `add` starts resuming with nothing redone if not called.
    public func startResuming(redoing redone: Set<String>) throws {
        guard resume, destination != nil, !toStandardOutput, handle == nil else { return }
        var kept = Data()
        for key in resumedOrder where !redone.contains(key) && finishedInputs.contains(key) {
            for line in resumedLines[key] ?? [] {
                kept.append(line)
                kept.append(UInt8(ascii: "\n"))
            }
        }
        try open(startingWith: kept)
    }

    /// Creates the file holding `lines` (atomically) and keeps it open for appending. Without
    /// --resume this happens at the first line, so a run that fails before any result leaves
    /// no file (and an older one untouched).
    private func open(startingWith lines: Data) throws {
        guard let destination else { return }
        // A device or a FIFO (/dev/null, a pipe to another program) is written to as it is:
        // there is no file to replace.
        if let kind = PathText.existingNonFile(destination), kind != "it is a folder",
           let direct = FileHandle(forWritingAtPath: destination) {
            handle = direct
            try direct.write(contentsOf: lines)
            return
        }
        do {
            // A missing folder is created, as for the pictures written with -o / --out-dir.
            let folder = PathText.parent(destination)
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            try AtomicFile.write(lines, to: destination)
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: destination))
            try handle?.seekToEnd()
        } catch let error as AtomicFileError {
            throw InputError(destination, "cannot write the JSON Lines file (\(error.problem))")
        } catch {
            throw InputError(destination, "cannot write the JSON Lines file (\(error.localizedDescription))")
        }
    }

    deinit { try? handle?.close() }

    /// Appends one record as one line, sorted keys, written through at once.
    public func add(_ record: [String: Any]) throws {
        var line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
        line.append(UInt8(ascii: "\n"))
        if toStandardOutput {
            FileHandle.standardOutput.write(line)
        } else if let destination {
            if handle == nil { try resume ? startResuming(redoing: []) : open(startingWith: Data()) }
            guard let handle else { return }
            do {
                try handle.write(contentsOf: line)
            } catch {
                throw InputError(destination, "cannot append to the JSON Lines file (\(error.localizedDescription))")
            }
        }
    }
}
