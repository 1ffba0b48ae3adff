import EffBatch
import EffImage
import Foundation
import Testing

/// A temporary folder tree: `files` are relative paths (sub-folders made as needed).
func makeTree(_ files: [String], contents: Data = Data([1, 2, 3])) throws -> URL {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-batch-\(UUID().uuidString)")
    for file in files {
        let url = root.appendingPathComponent(file)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try contents.write(to: url)
    }
    return root
}

@Suite struct InputCollectionTests {
    @Test func folderIsSortedAndSkipsHiddenFilesAndOwnOutputs() throws {
        let root = try makeTree(["b.jpg", "a.png", "notes.txt", ".hidden.jpg", "a.mask.png", "sub/c.jpg", "sub/deeper/d.png"])
        defer { try? FileManager.default.removeItem(at: root) }
        let collector = InputCollector(excludedSuffixes: [".mask.png"])
        let flat = try collector.collect(arguments: [root.path])
        #expect(flat.map(\.relativePath) == ["a.png", "b.jpg", "notes.txt"])
        #expect(flat.first?.path == root.path + "/a.png")
        let deep = try InputCollector(recursive: true, excludedSuffixes: [".mask.png"]).collect(arguments: [root.path])
        #expect(deep.map(\.relativePath) == ["a.png", "b.jpg", "notes.txt", "sub/c.jpg", "sub/deeper/d.png"])
    }

    @Test func excludedFolderAndDuplicatesAreLeftOut() throws {
        let root = try makeTree(["a.png", "out/a.png", "b.png"])
        defer { try? FileManager.default.removeItem(at: root) }
        let collector = InputCollector(recursive: true, excludedPaths: [root.appendingPathComponent("out").path])
        let pictures = try collector.collect(arguments: [root.path, root.path + "/b.png", root.path + "/./a.png"])
        #expect(pictures.map(\.relativePath) == ["a.png", "b.png"])
    }

    @Test func globsAndListsExpandLikeArguments() throws {
        let root = try makeTree(["x/1.jpg", "x/2.png", "y/3.jpg"])
        defer { try? FileManager.default.removeItem(at: root) }
        let globbed = try InputCollector().collect(arguments: [root.path + "/*/*.jpg"])
        #expect(globbed.map(\.relativePath) == ["x/1.jpg", "y/3.jpg"])
        let list = root.appendingPathComponent("list.txt")
        try "# pictures\n\n\(root.path)/x/2.png\n  \(root.path)/y  \n\(root.path)/missing.jpg\n".write(to: list, atomically: true, encoding: .utf8)
        let listed = try InputCollector().collect(arguments: [], inputList: list.path)
        #expect(listed.map(\.relativePath) == ["2.png", "3.jpg", "missing.jpg"])
        #expect(throws: InputError.self) { try InputCollector().collect(arguments: [], inputList: root.path + "/no-list.txt") }
    }

    @Test func shardsPartitionTheInputsStably() throws {
        let pictures = (0..<1000).map { InputPicture(path: "/data/\($0).jpg", relativePath: "\($0 % 7)/\($0).jpg") }
        let shards = try (0..<4).map { try Shard(parsing: "\($0)/4") }
        var owners = [Int](repeating: 0, count: pictures.count)
        for shard in shards {
            let mine = pictures.indices.filter { shard.contains(pictures[$0]) }
            for i in mine { owners[i] += 1 }
            #expect(mine.count > 200 && mine.count < 300, "shard \(shard) holds \(mine.count) of 1000")
        }
        #expect(owners.allSatisfy { $0 == 1 })
        // Membership depends on the picture alone, not on the others or their order.
        let alone = pictures[123]
        #expect(shards.filter { $0.contains(alone) }.count == 1)
        for bad in ["4/4", "-1/4", "1", "a/b", "0/0", "1/2/3"] {
            #expect(throws: InputError.self, "\(bad)") { try Shard(parsing: bad) }
        }
    }

    @Test func outputNamesMirrorTheTreeAndNeverCollide() {
        let pictures = [
            InputPicture(path: "in/a.jpg", relativePath: "a.jpg"),
            InputPicture(path: "in/a.png", relativePath: "a.png"),
            InputPicture(path: "in/sub/b.jpg", relativePath: "sub/b.jpg"),
            InputPicture(path: "../up.jpg", relativePath: "../up.jpg"),
        ]
        let mirrored = OutputNaming(pictures, folder: "out")
        #expect(pictures.map { mirrored.path(for: $0, suffix: ".mask.png") }
                == ["out/a.jpg.mask.png", "out/a.png.mask.png", "out/sub/b.mask.png", "out/__/up.mask.png"])
        let beside = OutputNaming(pictures, folder: nil)
        #expect(beside.path(for: pictures[2], suffix: ".mask.png") == "in/sub/b.mask.png")
        #expect(beside.path(for: pictures[0], suffix: ".mask.png") == "in/a.jpg.mask.png")
    }

    /// Spark's RDD.pipe gives each process a part of a corpus as a list of files. Named on its
    /// own, a file sits at the top of the output tree, so `a/1.jpg` and `b/1.jpg` in two
    /// processes both wrote `OUT/1.detections.png`, and `c/2.jpg` / `c/2.png` both wrote
    /// `OUT/c/2…`. With `--input-root` each process names every picture as a run over the root does.
    @Test func inputRootNamesPartsOfACorpusAsOneRunOverItDoes() throws {
        let root = try makeTree(["a/1.jpg", "b/1.jpg", "c/2.jpg", "c/2.png", "c/3.jpg", "c/3.txt"])
        defer { try? FileManager.default.removeItem(at: root) }
        let whole = try InputCollector(recursive: true, picturesByName: true).collect(arguments: [root.path])
        let wholeNaming = OutputNaming(whole, folder: "out")
        let expected = whole.map { wholeNaming.path(for: $0, suffix: ".mask.png") }
        #expect(expected == ["out/a/1.mask.png", "out/b/1.mask.png", "out/c/2.jpg.mask.png", "out/c/2.png.mask.png", "out/c/3.mask.png"])
        // Each picture alone, as one process among several would get it (spelled differently, too).
        let spellings = ["\(root.path)/a/1.jpg", "\(root.path)/b/../b/1.jpg", "\(root.path)/c/2.jpg", "\(root.path)//c/2.png", "\(root.path)/c/3.jpg"]
        for (spelling, wanted) in zip(spellings, expected) {
            let listed = try InputCollector().collect(arguments: [spelling])
            let alone = OutputNaming(listed, folder: "out")
            let placed = try InputCollector.placing(listed, under: root.path + "/")
            let rooted = OutputNaming(placed, folder: "out", stemsFromFolders: true)
            #expect(rooted.path(for: placed[0], suffix: ".mask.png") == wanted)
            #expect(placed[0].path == spelling, "the picture keeps the spelling it was given (the JSON's image)")
            if spelling.hasSuffix("/a/1.jpg") { #expect(alone.path(for: listed[0], suffix: ".mask.png") == "out/1.mask.png") }
        }
        // The shard share is the one a run over the root chooses.
        let shard = try Shard(parsing: "1/3")
        let placedWhole = try InputCollector.placing(whole, under: root.path)
        #expect(placedWhole.map(shard.contains) == whole.map(shard.contains))
        // A picture outside the root is refused, naming it.
        let outside = try InputCollector().collect(arguments: ["/tmp/elsewhere.jpg"])
        #expect(throws: InputError("/tmp/elsewhere.jpg", "not inside --input-root \(root.path)")) {
            try InputCollector.placing(outside, under: root.path)
        }
    }
}

@Suite struct JSONLinesOutputTests {
    @Test func resumeKeepsFinishedLinesOnly() throws {
        let root = try makeTree([])
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("out.jsonl").path
        let previous = #"{"image":"a.png","score":1}"# + "\n" + #"{"error":"broken","image":"b.png"}"# + "\n"
            + #"{"image":"a.png","score":1}"# + "\n" + #"{"image":"c.png","sco"#
        try previous.write(toFile: file, atomically: true, encoding: .utf8)
        let resumed = try JSONLinesOutput(file, resume: true)
        #expect(resumed.hasResult(for: "a.png") && resumed.hasResult(for: "./a.png"))
        #expect(!resumed.hasResult(for: "b.png") && !resumed.hasResult(for: "c.png"))
        try resumed.add(["image": "b.png", "score": 2])
        #expect(try String(contentsOfFile: file, encoding: .utf8) == #"{"image":"a.png","score":1}"# + "\n" + #"{"image":"b.png","score":2}"# + "\n")
        // A picture run again (its outputs were missing) loses its old line: one line each.
        let again = try JSONLinesOutput(file, resume: true)
        try again.startResuming(redoing: [InputCollector.canonical("./a.png")])
        try again.add(["image": "a.png", "score": 3])
        #expect(try String(contentsOfFile: file, encoding: .utf8) == #"{"image":"b.png","score":2}"# + "\n" + #"{"image":"a.png","score":3}"# + "\n")
        // Without --resume the file is replaced at the first line (and left alone until then).
        let fresh = try JSONLinesOutput(file)
        #expect(!fresh.hasResult(for: "a.png"))
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix(#"{"image":"b.png""#))
        try fresh.add(["image": "z.png"])
        #expect(try String(contentsOfFile: file, encoding: .utf8) == #"{"image":"z.png"}"# + "\n")
    }
}

@Suite struct BatchRunnerTests {
    struct Boom: Error {}

    /// Pictures finish out of order (random delays, several at once) and are recorded in order.
    @Test(arguments: [1, 4])
    func picturesAreRecordedInOrderAndFailuresReported(atOnce: Int) throws {
        let pictures = (0..<40).map { InputPicture(path: "\($0)", relativePath: "\($0)") }
        let log = LockedLog()
        var generator = SystemRandomNumberGenerator()
        let delays = (0..<40).map { _ in UInt32.random(in: 0..<3000, using: &generator) }
        let summary = try BatchRunner(concurrentPictures: atOnce, showProgress: false).run(
            pictures.filter { $0.path != "5" }, alreadyDone: 1,
            process: { picture -> Int in
                let n = Int(picture.path) ?? -1
                usleep(delays[n])
                if n % 10 == 3 { throw ImageError(.corrupt, picture.path, "bad") }
                if n == 17 { throw ImageError(.tooLarge, picture.path, "too big") }
                return n * 2
            },
            record: { picture, doubled in log.append("\(picture.path)=\(doubled)") },
            report: { picture, _ in log.append("\(picture.path)!") })
        #expect(summary.total == 40 && summary.skipped == 1 && summary.failed == 5 && summary.succeeded == 34)
        let expected = (0..<40).filter { $0 != 5 }.map { $0 % 10 == 3 || $0 == 17 ? "\($0)!" : "\($0)=\($0 * 2)" }
        #expect(log.entries == expected)
    }

    @Test func severalPicturesAreWorkedOnAtOnce() throws {
        let pictures = (0..<16).map { InputPicture(path: "\($0)", relativePath: "\($0)") }
        let inFlight = LockedCounter()
        _ = try BatchRunner(concurrentPictures: 4, showProgress: false).run(
            pictures,
            process: { _ in inFlight.enter(); usleep(20_000); inFlight.leave() },
            record: { _, _ in }, report: { _, _ in })
        #expect(inFlight.maximum == 4)
    }

    /// Pictures before the failing one are all recorded, none after it.
    @Test(arguments: [1, 3])
    func anOtherErrorStopsTheRun(atOnce: Int) throws {
        let pictures = (0..<100).map { InputPicture(path: "\($0)", relativePath: "\($0)") }
        let log = LockedLog()
        #expect(throws: Boom.self) {
            _ = try BatchRunner(concurrentPictures: atOnce, showProgress: false).run(
                pictures,
                process: { picture -> Int in
                    let n = Int(picture.path) ?? 0
                    if n == 10 { throw Boom() }
                    if n == 9 { usleep(50_000) }
                    return n
                },
                record: { picture, _ in log.append(picture.path) }, report: { _, _ in })
        }
        #expect(log.entries == (0..<10).map(String.init))
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0, peak = 0
    var maximum: Int { lock.withLock { peak } }
    func enter() { lock.withLock { current += 1; peak = max(peak, current) } }
    func leave() { lock.withLock { current -= 1 } }
}

final class LockedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    var entries: [String] { lock.withLock { items } }
    func append(_ entry: String) { lock.withLock { items.append(entry) } }
}
