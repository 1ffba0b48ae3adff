import ArgumentParser
import EffWeights
import Foundation

extension WeightsCommand {
    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download an official checkpoint into the cache ($XDG_CACHE_HOME/effdense or ~/.cache/effdense).",
            discussion: "Set EFFDENSE_WEIGHTS_MIRROR to a base URL to fetch the same files from a mirror.")

        @Argument(help: "A model name: tf_efficientdet_d0 … d7x, efficientdet_d0/d1, tf_efficientnet_b0 …, efficientnet_lite0 …")
        var name: String

        @Flag(help: "Download again even if the file is already in the cache.")
        var force = false

        func run() throws {
            print(try Self.fetch(name, force: force))
        }

        /// The cached checkpoint for `name`, downloaded (with a progress bar on a terminal) when
        /// missing or when `force` is set.
        static func fetch(_ name: String, force: Bool = false) throws -> String {
            let url = try CheckpointRegistry.url(for: name)
            let destination = try CheckpointRegistry.cachedFile(for: name)
            if !force && FileManager.default.fileExists(atPath: destination.path) { return destination.path }
            let bar = ProgressBar(label: url.lastPathComponent)
            var downloader = CheckpointDownloader()
            if bar.isEnabled {
                downloader.progress = { done, total in bar.update(done, total) }
            }
            defer { bar.finish() }
            do {
                try downloader.download(url, to: destination)
            } catch let error as WeightsError where error.kind == .download {
                throw WeightsError(.download, error.file, "\(error.problem). Without network access, pass --weights FILE with a local copy of the checkpoint")
            }
            return destination.path
        }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar: @unchecked Sendable {
    let label: String
    let isEnabled = isatty(STDERR_FILENO) != 0
    private let lock = NSLock()
    private var lastDraw = Date.distantPast
    private var drawn = false

    init(label: String) { self.label = label }

    func update(_ done: Int64, _ total: Int64?) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        drawn = true
        let megabytes = String(format: "%.1f", Double(done) / 1_048_576)
        var line = "\r\(label) \(megabytes) MB"
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let filled = Int(fraction * 30)
            line += String(format: " / %.1f MB [", Double(total) / 1_048_576) + String(repeating: "#", count: filled)
                + String(repeating: ".", count: 30 - filled) + String(format: "] %3.0f%%", fraction * 100)
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }
}
