import EffCore
import EffImage
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ManyPicturesCLITests {
    /// A broken picture among good ones is reported (stderr and an "error" JSON line), the others
    /// are processed and written, and the exit status is 1.
    @Test(arguments: ["classify", "detect", "segment"])
    func brokenPictureDoesNotStopTheRun(_ command: String) throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let broken = folder.appendingPathComponent("broken.jpg").path
        let jpeg = try Data(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/coffee.jpg"))
        try jpeg.prefix(1000).write(to: URL(fileURLWithPath: broken))
        let good = folder.appendingPathComponent("chelsea.png").path
        try FileManager.default.copyItem(atPath: CLITests.packageRoot.appendingPathComponent("samples/chelsea.png").path, toPath: good)
        let json = folder.appendingPathComponent("out.jsonl").path
        var arguments = [command, broken, good, "--json", json]
        switch command {
        case "detect": arguments += ["--weights", DetectCLITests.weights, "--out-dir", folder.path]
        case "segment": arguments += ["--weights", SegmentCLITests.weights, "--out-dir", folder.path]
        default: break
        }
        let result = try CLITests.run(arguments)
        #expect(result.status == 1)
        #expect(result.stderr.contains(broken) && result.stderr.contains("2 pictures: 1 done, 1 failed"), "\(result.stderr)")
        let lines = try String(contentsOfFile: json, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let records = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(records[0]["image"] as? String == broken && (records[0]["error"] as? String)?.contains("truncated") == true)
        #expect(records[1]["image"] as? String == good && records[1]["error"] == nil)
        if command == "detect" {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("chelsea.detections.png").path))
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("broken.detections.png").path))
        }
        if command == "segment" {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("chelsea.mask.png").path))
            #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("broken.mask.png").path))
        }
    }
}

/// The folder of the "Done when": 190 good pictures (PNG and JPEG, some with a misleading
/// extension) and 10 broken ones (truncated, zero bytes, wrong extension, not a picture), plus
/// three files not named as pictures (README.md, a .pth, a JPEG without extension) that folder
/// walks leave out.
struct MixedFolder {
    let root: URL
    let good: [String]
    let broken: [String]

    init(goodCount: Int = 190) throws {
        root = try CLITests.temporaryFolder().appendingPathComponent("photos")
        let chelsea = try ImageCodec.decode(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/chelsea.png").path)
        let jpegs = try ["rgb.jpg", "gray.jpg", "cmyk.jpg"].map {
            try Data(contentsOf: CLITests.packageRoot.appendingPathComponent("Tests/EffImageTests/Fixtures/\($0)"))
        }
        var good: [String] = []
        for i in 0..<goodCount {
            let folder = ["", "2024/", "2024/summer/"][i % 3]
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
            if i % 4 == 3 {
                // JPEGs, every other one under a name that hides what it is.
                let name = folder + (i % 8 == 7 ? "jpeg_named_\(i).png" : "photo_\(i).jpg")
                try jpegs[i % 3].write(to: root.appendingPathComponent(name))
                good.append(name)
            } else {
                let crop = try Self.crop(chelsea, x: (i * 7) % 200, y: (i * 5) % 150, width: 64 + i % 17, height: 48 + i % 13)
                let name = folder + (i % 10 == 1 ? "png_named_\(i).jpg" : "photo_\(i).png")
                try ImageCodec.writePNG(crop, to: root.appendingPathComponent(name).path)
                good.append(name)
            }
        }
        let png = try Data(contentsOf: root.appendingPathComponent(good[0]))
        let jpeg = jpegs[0]
        let broken: [(String, Data)] = [
            ("truncated_1.png", png.prefix(png.count / 2)), ("truncated_2.jpg", jpeg.prefix(jpeg.count / 2)),
            ("2024/truncated_3.png", png.prefix(40)),
            ("empty.jpg", Data()), ("2024/summer/empty.png", Data()),
            ("animation.png", Data("GIF89a".utf8) + Data(repeating: 7, count: 100)),
            ("bitmap.jpg", Data("BM".utf8) + Data(repeating: 0, count: 100)),
            ("notes.jpg", Data("not a picture\n".utf8)), ("random.jpg", Data((0..<500).map { UInt8(($0 * 37 + 11) % 251) })),
            ("2024/weights.png", Data("PK\u{3}\u{4}".utf8) + Data(repeating: 1, count: 64)),
        ]
        for (name, data) in broken { try data.write(to: root.appendingPathComponent(name)) }
        // Files not named as pictures: left out of the folder walk (and counted), whatever they hold.
        for (name, data) in [("README.md", Data("# photos\n".utf8)), ("2024/model.pth", png), ("jpeg_without_extension", jpeg)] {
            try data.write(to: root.appendingPathComponent(name))
        }
        self.good = good
        self.broken = broken.map(\.0)
    }

    static func crop(_ image: RGBImage, x: Int, y: Int, width: Int, height: Int) throws -> RGBImage {
        var pixels: [UInt8] = []
        for row in y..<(y + height) {
            let start = (row * image.width + x) * 3
            pixels += image.pixels[start..<(start + width * 3)]
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    func remove() { try? FileManager.default.removeItem(at: root.deletingLastPathComponent()) }
}

/// JSON Lines file → records.
func readRecords(_ path: String) throws -> [[String: Any]] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
}

@Suite(.serialized) struct BatchCLITests {
    /// The folder: runs to the end, 190 results, 10 error lines, exit 1, masks for the good
    /// pictures mirrored under --out-dir and nothing for the broken ones.
    @Test func folderWithBrokenPicturesRunsToTheEnd() throws {
        let photos = try MixedFolder()
        defer { photos.remove() }
        let out = photos.root.deletingLastPathComponent().appendingPathComponent("masks")
        let json = out.appendingPathComponent("results.jsonl").path
        let result = try CLITests.run(["segment", photos.root.path, "--recursive", "--weights", SegmentCLITests.weights,
                                       "--out-dir", out.path, "--json", json])
        #expect(result.status == 1)
        #expect(result.stderr.contains("200 pictures: 190 done, 10 failed"), "\(result.stderr)")
        #expect(result.stderr.contains("3 files skipped: not named as pictures"), "\(result.stderr)")
        let records = try readRecords(json)
        let results = records.filter { $0["error"] == nil }, errors = records.filter { $0["error"] != nil }
        #expect(results.count == 190 && errors.count == 10)
        let prefix = photos.root.path + "/"
        #expect(Set(results.compactMap { ($0["image"] as? String)?.replacingOccurrences(of: prefix, with: "") }) == Set(photos.good))
        #expect(Set(errors.compactMap { ($0["image"] as? String)?.replacingOccurrences(of: prefix, with: "") }) == Set(photos.broken))
        for name in photos.good {
            let mask = out.appendingPathComponent((name as NSString).deletingPathExtension + ".mask.png").path
            #expect(FileManager.default.fileExists(atPath: mask), "\(mask)")
        }
        let written = try FileManager.default.subpathsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".mask.png") }
        #expect(written.count == 190)
        for name in photos.broken {
            #expect(!written.contains { $0.hasPrefix((name as NSString).deletingPathExtension + ".") }, "\(name) got an output")
            #expect(result.stderr.contains(prefix + name), "\(name) not reported")
        }
    }

    /// Killed halfway, then run again with --resume: the finished pictures are not redone and
    /// every picture ends with exactly one line.
    @Test func killedRunResumesWithoutRedoingOrDuplicating() throws {
        let photos = try MixedFolder()
        defer { photos.remove() }
        let out = photos.root.deletingLastPathComponent().appendingPathComponent("masks")
        let json = photos.root.deletingLastPathComponent().appendingPathComponent("results.jsonl").path
        let arguments = ["segment", photos.root.path, "--recursive", "--weights", SegmentCLITests.weights, "--out-dir", out.path, "--json", json]

        let process = Process()
        process.executableURL = CLITests.binary
        process.arguments = arguments + ["--threads", "1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline {
            let lines = (try? String(contentsOfFile: json, encoding: .utf8))?.split(separator: "\n").count ?? 0
            if lines >= 60 { break }
            usleep(2000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let before = try readRecords(json)
        #expect(before.count >= 60 && before.count < 200, "the kill did not land halfway: \(before.count) lines")
        let finishedBefore = Set(before.filter { $0["error"] == nil }.compactMap { $0["image"] as? String })
        let masksBefore = try FileManager.default.subpathsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".mask.png") }
        var stamps: [String: Date] = [:]
        for mask in masksBefore {
            stamps[mask] = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(mask).path)[.modificationDate] as? Date
        }

        let resumed = try CLITests.run(arguments + ["--resume"])
        #expect(resumed.status == 1)
        #expect(resumed.stderr.contains("\(finishedBefore.count) skipped"), "\(resumed.stderr)")
        let records = try readRecords(json)
        let images = records.compactMap { $0["image"] as? String }
        #expect(images.count == 200 && Set(images).count == 200, "duplicate or missing lines: \(images.count) lines, \(Set(images).count) pictures")
        #expect(records.filter { $0["error"] == nil }.count == 190)
        // Finished pictures' masks were left alone (a mask written before the kill whose JSON line was
        // not yet written is redone, which is right: its result was not recorded).
        var compared = 0
        for (mask, stamp) in stamps {
            let image = photos.root.path + "/" + mask
            guard finishedBefore.contains(where: { ($0 as NSString).deletingPathExtension == (image as NSString).deletingPathExtension.replacingOccurrences(of: ".mask", with: "") }) else { continue }
            let now = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(mask).path)[.modificationDate] as? Date
            #expect(now == stamp, "\(mask) was rewritten")
            compared += 1
        }
        #expect(compared >= finishedBefore.count - 1 && compared > 0)
    }

    /// N shards cover the unsharded run exactly: same lines, none twice.
    @Test func shardsUnionIsTheUnshardedRun() throws {
        let photos = try MixedFolder(goodCount: 30)
        defer { photos.remove() }
        let folder = photos.root.deletingLastPathComponent()
        func lines(_ extra: [String], _ name: String) throws -> [String] {
            let json = folder.appendingPathComponent(name).path
            _ = try CLITests.run(["classify", photos.root.path, "--recursive", "--weights", CLITests.realLite0, "--json", json] + extra)
            return try String(contentsOfFile: json, encoding: .utf8).split(separator: "\n").map(String.init)
        }
        let whole = try lines([], "all.jsonl")
        #expect(whole.count == 40)
        let shards = try (0..<3).map { try lines(["--shard", "\($0)/3"], "shard\($0).jsonl") }
        let union = shards.flatMap { $0 }
        #expect(union.count == whole.count, "shards overlap or miss pictures: \(shards.map(\.count))")
        #expect(Set(union) == Set(whole))
        #expect(shards.allSatisfy { !$0.isEmpty })
    }

    /// Spark's RDD.pipe: two processes, each given part of a corpus as a list, share one
    /// --out-dir. With --input-root they write what one run over the corpus writes — `a/1` and
    /// `b/1` apart, `c/2.jpg` and `c/2.png` keeping their extensions though no process sees both
    /// (without it, both `1.png` landed on `OUT/1.mask.png`).
    @Test func partsOfACorpusGivenAsListsNameOutputsAsOneRunOverIt() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let root = folder.appendingPathComponent("corpus").path
        let chelsea = CLITests.packageRoot.appendingPathComponent("samples/chelsea.png").path
        let coffee = CLITests.packageRoot.appendingPathComponent("samples/coffee.jpg").path
        for (name, source) in [("a/1.png", chelsea), ("b/1.png", coffee), ("c/2.png", coffee), ("c/2.jpg", coffee)] {
            try FileManager.default.createDirectory(atPath: PathText.parent("\(root)/\(name)"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: source, toPath: "\(root)/\(name)")
        }
        let whole = folder.appendingPathComponent("whole").path, parts = folder.appendingPathComponent("parts").path
        let all = try CLITests.run(["segment", root, "--recursive", "--weights", SegmentCLITests.weights, "--out-dir", whole, "--json", whole + ".jsonl"])
        #expect(all.status == 0, "\(all.stderr)")
        var lines: [String] = []
        for (k, list) in [["a/1.png", "c/2.png"], ["b/1.png", "c/2.jpg"]].enumerated() {
            let input = Data(list.map { "\(root)/\($0)\n" }.joined().utf8)
            let part = try CLITests.run(["segment", "--input-list", "-", "--input-root", root, "--weights", SegmentCLITests.weights,
                                         "--out-dir", parts, "--json", "-"], input: input)
            #expect(part.status == 0, "part \(k): \(part.stderr)")
            lines += part.stdout.split(separator: "\n").map(String.init)
        }
        let expected = ["a/1.mask.png", "b/1.mask.png", "c/2.jpg.mask.png", "c/2.png.mask.png"]
        for name in expected {
            #expect(FileManager.default.contentsEqual(atPath: "\(whole)/\(name)", andPath: "\(parts)/\(name)"), "\(name)")
        }
        #expect(try FileManager.default.subpathsOfDirectory(atPath: parts).filter { $0.hasSuffix(".png") }.sorted() == expected)
        let wholeLines = try String(contentsOfFile: whole + ".jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(lines.map { $0.replacingOccurrences(of: parts, with: whole) }) == Set(wholeLines))
        // A picture outside the root stops the run before any work, naming it.
        CLITests.expectOneLineError(try CLITests.run(["segment", chelsea, "--input-root", root, "--weights", SegmentCLITests.weights]), naming: chelsea)
    }

    /// A batch job's log (Slurm's --output): standard output and error opened apart on one file,
    /// appending. Each picture's line must be there when printed, so the summary on standard
    /// error comes last; with standard output buffered into a file it came first, or landed
    /// inside a half-flushed line.
    @Test func picturesLinesReachALogFileBeforeTheSummary() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = folder.appendingPathComponent("job.log").path
        try Data().write(to: URL(fileURLWithPath: log))
        let out = try #require(FileHandle(forWritingAtPath: log)), err = try #require(FileHandle(forWritingAtPath: log))
        for handle in [out, err] { _ = fcntl(handle.fileDescriptor, F_SETFL, O_APPEND) }
        let process = Process()
        process.executableURL = CLITests.binary
        process.arguments = ["classify", "samples/coffee.jpg", "samples/chelsea.png", "samples/rocket.jpg", "--weights", CLITests.realLite0]
        process.currentDirectoryURL = CLITests.packageRoot
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(process.terminationStatus == 0)
        #expect(lines.last?.hasPrefix("effdense: 3 pictures: 3 done") == true, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("samples/") }.count >= 3 && lines.dropLast().allSatisfy { !$0.contains("effdense:") }, "\(lines)")
    }

    /// --input-list - reads paths from standard input; a glob in quotes is expanded by effdense.
    @Test func inputListFromStandardInputAndQuotedGlobs() throws {
        let listed = try CLITests.run(["classify", "--input-list", "-", "--weights", CLITests.realLite0, "--json", "-"],
                                      input: Data("# two pictures\nsamples/coffee.jpg\n\nsamples/chelsea.png\n".utf8))
        #expect(listed.status == 0, "\(listed.stderr)")
        let images = listed.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["image"] as? String }
        #expect(images == ["samples/coffee.jpg", "samples/chelsea.png"])
        #expect(listed.stderr.contains("2 pictures: 2 done"))
        let globbed = try CLITests.run(["classify", "samples/*.jpg", "--weights", CLITests.realLite0, "--json", "-"])
        #expect(globbed.status == 0, "\(globbed.stderr)")
        #expect(globbed.stdout.split(separator: "\n").count == 3)
    }

    /// An output that would land on an input is refused; the input is untouched.
    @Test func neverOverwritesAnInput() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("cat.png").path
        try FileManager.default.copyItem(atPath: CLITests.packageRoot.appendingPathComponent("samples/chelsea.png").path, toPath: input)
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        CLITests.expectOneLineError(try CLITests.run(["segment", input, "--weights", SegmentCLITests.weights, "-o", input]), naming: input)
        CLITests.expectOneLineError(try CLITests.run(["classify", input, "--weights", CLITests.realLite0, "--json", input]), naming: input)
        // Another input named like this one's mask.
        let lookalike = folder.appendingPathComponent("cat.mask.png").path
        try FileManager.default.copyItem(atPath: input, toPath: lookalike)
        let result = try CLITests.run(["segment", input, lookalike, "--weights", SegmentCLITests.weights])
        #expect(result.status == 1 && result.stderr.contains("refusing to write") && result.stderr.contains("it is the input picture"), "\(result.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == before)
        #expect(try Data(contentsOf: URL(fileURLWithPath: lookalike)) == before)
    }
}
