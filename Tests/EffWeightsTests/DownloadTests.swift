import EffWeights
import Foundation
import Testing

/// `weights pull`'s downloader against an HTTP server on 127.0.0.1 that this test starts.
@Suite struct DownloadTests {
    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-dl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func randomBlob(_ count: Int) -> Data {
        var rng = SystemRandomNumberGenerator()
        return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    /// A file name carrying `data`'s SHA-256 prefix, as release files do.
    static func hashedName(_ data: Data, in folder: URL) throws -> String {
        let scratch = folder.appendingPathComponent("scratch")
        try data.write(to: scratch)
        defer { try? FileManager.default.removeItem(at: scratch) }
        return "blob-\(try CheckpointDownloader().sha256Hex(of: scratch).prefix(8)).pth"
    }

    @Test func sha256MatchesTheStandardTestVector() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("abc")
        try Data("abc".utf8).write(to: file)
        #expect(try CheckpointDownloader().sha256Hex(of: file) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hashPrefixIsReadFromFileNamesAsTorchHubDoes() {
        #expect(CheckpointRegistry.hashPrefix(inFileName: "tf_efficientdet_d0_34-f153e0cf.pth") == "f153e0cf")
        #expect(CheckpointRegistry.hashPrefix(inFileName: "efficientnet-lite0-57934424.pth") == "57934424")
        #expect(CheckpointRegistry.hashPrefix(inFileName: "weights.pth") == nil)
    }

    @Test func downloadsAndVerifies() throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let blob = Self.randomBlob(3_000_000)
        let name = try Self.hashedName(blob, in: folder)
        server.serve(name, blob)
        let destination = folder.appendingPathComponent(name)
        let progress = ProgressLog()
        try CheckpointDownloader(progress: { progress.record($0, $1) }).download(
            try #require(URL(string: server.baseURL + name)), to: destination)
        #expect(try Data(contentsOf: destination) == blob)
        #expect(!FileManager.default.fileExists(atPath: destination.path + ".partial"))
        #expect(progress.last?.0 == Int64(blob.count) && progress.last?.1 == Int64(blob.count))
    }

    @Test func realCheckpointVerifiesAgainstItsPublishedHash() throws {
        let real = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("weights/efficientnet-lite0-57934424.pth")
        let data = try #require(try? Data(contentsOf: real), "run scripts/fetch-weights.sh first")
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        server.serve("efficientnet-lite0-57934424.pth", data)
        let destination = folder.appendingPathComponent("lite0.pth")
        try CheckpointDownloader().download(try #require(URL(string: server.baseURL + "efficientnet-lite0-57934424.pth")), to: destination)
        #expect(try WeightStore(contentsOf: destination.path).names.count == 296)
    }

    @Test func corruptedDownloadIsRejectedAndNothingIsLeft() throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let blob = Self.randomBlob(200_000)
        let name = try Self.hashedName(blob, in: folder)
        server.serve(name, blob, behaviour: .corruptOneByte)
        let destination = folder.appendingPathComponent(name)
        #expect(throws: WeightsError.self) {
            try CheckpointDownloader().download(try #require(URL(string: server.baseURL + name)), to: destination)
        }
        #expect(!FileManager.default.fileExists(atPath: destination.path))
        #expect(!FileManager.default.fileExists(atPath: destination.path + ".partial"))
    }

    @Test func serverDyingHalfwayFailsThenResumes() throws {
        let server = try LocalHTTPServer()
        defer { server.stop() }
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let blob = Self.randomBlob(1_000_000)
        let name = try Self.hashedName(blob, in: folder)
        server.serve(name, blob, behaviour: .dieHalfway)
        let destination = folder.appendingPathComponent(name)
        let url = try #require(URL(string: server.baseURL + name))
        do {
            try CheckpointDownloader().download(url, to: destination)
            Issue.record("a truncated download was accepted")
        } catch let error as WeightsError {
            #expect(error.kind == .download)
        }
        #expect(!FileManager.default.fileExists(atPath: destination.path))
        let partial = try Data(contentsOf: URL(fileURLWithPath: destination.path + ".partial"))
        #expect(partial.count == blob.count / 2)
        // The server recovers; the next download continues from the partial file.
        server.serve(name, blob)
        try CheckpointDownloader().download(url, to: destination)
        #expect(try Data(contentsOf: destination) == blob)
        #expect(server.requests.last?.range == "bytes=\(blob.count / 2)-")
    }

    @Test func noServerFailsFast() throws {
        let server = try LocalHTTPServer()
        let url = try #require(URL(string: server.baseURL + "x-0000.pth"))
        server.stop()  // nothing listens on that port any more
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let start = Date()
        #expect(throws: WeightsError.self) {
            try CheckpointDownloader().download(url, to: folder.appendingPathComponent("x-0000.pth"))
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func registryKnowsTheOfficialCheckpointsAndAliases() throws {
        #expect(try CheckpointRegistry.url(for: "d0", mirror: nil).lastPathComponent == "tf_efficientdet_d0_34-f153e0cf.pth")
        #expect(try CheckpointRegistry.url(for: "tf_efficientdet_d7x", mirror: nil).lastPathComponent == "tf_efficientdet_d7x-f390b87c.pth")
        #expect(try CheckpointRegistry.url(for: "efficientdet_d1", mirror: "http://127.0.0.1:9/m").absoluteString == "http://127.0.0.1:9/m/efficientdet_d1-bb7e98fe.pth")
        #expect(throws: WeightsError.self) { try CheckpointRegistry.url(for: "resnet50", mirror: nil) }
        for name in CheckpointRegistry.urls.keys {
            #expect(CheckpointRegistry.hashPrefix(inFileName: try CheckpointRegistry.url(for: name, mirror: nil).lastPathComponent) != nil, "\(name)")
        }
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(Int64, Int64?)] = []
    func record(_ done: Int64, _ total: Int64?) { lock.lock(); entries.append((done, total)); lock.unlock() }
    var last: (Int64, Int64?)? { lock.lock(); defer { lock.unlock() }; return entries.last }
}
