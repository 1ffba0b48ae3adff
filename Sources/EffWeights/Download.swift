import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Downloads a checkpoint into a file: resumable (an existing `<file>.partial` is continued
/// with an HTTP Range request), written atomically (renamed into place only when complete and
/// verified), and checked against the SHA-256 prefix in its file name as torch.hub does.
public struct CheckpointDownloader: Sendable {
    /// Seconds without progress before giving up.
    public var timeout: TimeInterval = 20
    /// Called with (bytes so far, total bytes if known) as data arrives.
    public var progress: (@Sendable (Int64, Int64?) -> Void)?

    public init(timeout: TimeInterval = 20, progress: (@Sendable (Int64, Int64?) -> Void)? = nil) {
        self.timeout = timeout
        self.progress = progress
    }

    /// Fetches `url` into `destination`, verifying `expectedHashPrefix` (default: the one in
    /// the URL's file name, if any). Returns the destination.
    @discardableResult
    public func download(_ url: URL, to destination: URL, expectedHashPrefix: String? = nil) throws -> URL {
        let hashPrefix = expectedHashPrefix ?? CheckpointRegistry.hashPrefix(inFileName: url.lastPathComponent)
        let partial = destination.appendingPathExtension("partial")
        do {
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw WeightsError(.unwritable, destination.deletingLastPathComponent().path, "cannot create the cache folder")
        }
        let existing = ((try? FileManager.default.attributesOfItem(atPath: partial.path))?[.size] as? NSNumber)?.int64Value ?? 0
        try fetch(url, into: partial, resumingAt: existing)
        if let hashPrefix {
            let digest = try sha256Hex(of: partial)
            guard digest.hasPrefix(hashPrefix) else {
                try? FileManager.default.removeItem(at: partial)
                throw WeightsError(.download, url.absoluteString, "the downloaded file's SHA-256 \(digest.prefix(16))… does not start with \(hashPrefix) as its name says: corrupted download, deleted; try again")
            }
        }
        do {
            if FileManager.default.fileExists(atPath: destination.path) {
                try FileManager.default.removeItem(at: destination)
            }
            try FileManager.default.moveItem(at: partial, to: destination)
        } catch {
            throw WeightsError(.unwritable, destination.path, "cannot move the finished download into place")
        }
        return destination
    }

    /// SHA-256 of a file as lowercase hex, read in chunks.
    public func sha256Hex(of file: URL) throws -> String {
        guard let handle = try? FileHandle(forReadingFrom: file) else {
            throw WeightsError(.unreadable, file.path, "cannot read the file to verify it")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    private func fetch(_ url: URL, into partial: URL, resumingAt offset: Int64) throws {
        if url.isFileURL {
            // A mirror on a local or shared drive: copy (nothing to resume).
            try? FileManager.default.removeItem(at: partial)
            do {
                try FileManager.default.copyItem(at: url, to: partial)
            } catch {
                throw WeightsError(.download, url.absoluteString, "cannot copy the file (\(FileManager.default.fileExists(atPath: url.path) ? "unreadable" : "no such file"))")
            }
            return
        }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        let sink = DownloadSink(file: partial, resumeOffset: offset, progress: progress)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration, delegate: sink, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        sink.done.wait()
        if let failure = sink.failure {
            throw WeightsError(.download, url.absoluteString, failure)
        }
    }
}

/// Receives a download's bytes into the partial file (appending after a 206 answer to a Range
/// request, starting over after a 200).
private final class DownloadSink: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let file: URL
    let resumeOffset: Int64
    let progress: (@Sendable (Int64, Int64?) -> Void)?
    let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var handle: FileHandle?
    private var received: Int64 = 0
    private var expected: Int64?
    private(set) var failure: String?

    init(file: URL, resumeOffset: Int64, progress: (@Sendable (Int64, Int64?) -> Void)?) {
        self.file = file
        self.resumeOffset = resumeOffset
        self.progress = progress
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        guard let http = response as? HTTPURLResponse else {
            failure = "not an HTTP response"
            completionHandler(.cancel)
            return
        }
        let resuming = http.statusCode == 206 && resumeOffset > 0
        guard http.statusCode == 200 || resuming else {
            failure = "the server answered HTTP \(http.statusCode)"
            completionHandler(.cancel)
            return
        }
        if !resuming || !FileManager.default.fileExists(atPath: file.path) {
            _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        }
        guard let handle = try? FileHandle(forWritingTo: file) else {
            failure = "cannot write \(file.path)"
            completionHandler(.cancel)
            return
        }
        if resuming {
            _ = try? handle.seekToEnd()
            received = resumeOffset
        } else {
            try? handle.truncate(atOffset: 0)
        }
        self.handle = handle
        let length = http.expectedContentLength
        expected = length > 0 ? received + length : nil
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.lock()
        do {
            try handle?.write(contentsOf: data)
            received += Int64(data.count)
        } catch {
            failure = "cannot write \(file.path) (disk full?)"
            dataTask.cancel()
        }
        let (now, total) = (received, expected)
        lock.unlock()
        progress?(now, total)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        lock.lock()
        try? handle?.close()
        handle = nil
        if failure == nil {
            if let error {
                failure = "download failed: \(error.localizedDescription)" + (received > 0 ? " after \(received) bytes (kept; the next pull resumes)" : "")
            } else if let expected, received < expected {
                failure = "the connection closed after \(received) of \(expected) bytes (kept; the next pull resumes)"
            }
        }
        lock.unlock()
        done.signal()
    }
}
