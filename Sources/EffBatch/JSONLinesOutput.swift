import EffCore
import Foundation

/// `--json FILE|-`: one JSON object per picture, appended and flushed as each picture finishes, so
/// a run that is killed keeps every finished result. With `resume`, an existing file's complete
/// result lines are kept (error lines and a line cut off by the kill are dropped, since those
/// pictures run again) and new lines are appended to them.
public final class JSONLinesOutput {
    public let destination: String?
    /// The `"image"` of every result line already in the file when resuming.
    public private(set) var finishedImages: Set<String> = []
    private var handle: FileHandle?

    /// Whether the lines go to standard output (so human-readable output should stay quiet).
    public var toStandardOutput: Bool { destination == "-" }

    public init(_ destination: String?, resume: Bool = false) throws {
        self.destination = destination
        guard let destination, destination != "-" else { return }
        var kept = Data()
        if resume, let existing = try? Data(contentsOf: URL(fileURLWithPath: destination)) {
            for line in existing.split(separator: UInt8(ascii: "\n")) {
                guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                      let image = object["image"] as? String, object["error"] == nil else { continue }
                if finishedImages.insert(image).inserted {
                    kept.append(line)
                    kept.append(UInt8(ascii: "\n"))
                }
            }
        }
        if resume { try open(startingWith: kept) }
    }

    /// Creates the file holding `lines` (atomically) and keeps it open for appending. Without
    /// --resume this happens at the first line, so a run that fails before any result leaves
    /// no file (and an older one untouched).
    private func open(startingWith lines: Data) throws {
        guard let destination else { return }
        do {
            // A missing folder is created, as for the pictures written with -o / --out-dir.
            let folder = PathText.parent(destination)
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            try lines.write(to: URL(fileURLWithPath: destination), options: .atomic)
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: destination))
            try handle?.seekToEnd()
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
            if handle == nil { try open(startingWith: Data()) }
            guard let handle else { return }
            do {
                try handle.write(contentsOf: line)
            } catch {
                throw InputError(destination, "cannot append to the JSON Lines file (\(error.localizedDescription))")
            }
        }
    }
}
