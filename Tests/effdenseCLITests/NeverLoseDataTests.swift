import EffCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Outputs never land on inputs (pictures, weights, lists) or on each other, signals leave no
/// temporary files, `--resume` never duplicates a line, and a mask with its overlay lands whole.
@Suite struct NeverLoseDataTests {
    static let detector = DetectCLITests.weights
    static let segmenter = SegmentCLITests.weights

    /// A folder with a.png, b.png, c.png, ... (copies of samples/chelsea.png, made distinct).
    static func pictureFolder(count: Int = 3) throws -> URL {
        let folder = try CLITests.temporaryFolder()
        let source = try Data(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/chelsea.png"))
        for i in 0..<count {
            // A trailing byte after IEND keeps each file a valid PNG with its own content.
            try (source + Data([UInt8(i)])).write(to: folder.appendingPathComponent(i < 26 ? "\(Character(UnicodeScalar(97 + i)!)).png" : "p\(i).png"))
        }
        return folder
    }

    /// Every file under `folder` with its bytes.
    static func snapshot(_ folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.subpathsOfDirectory(atPath: folder.path) {
            let path = folder.appendingPathComponent(name).path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: path))
            }
        }
        return files
    }

    /// Each case: arguments (with `D` standing for the folder) that would write over something
    /// read; the run ends with one line naming the path, and every file is as it was.
    @Test(arguments: [
        // The JSON named like a picture of the folder walked.
        ["detect", "D", "--no-images", "--weights", "W_DET", "--json", "D/b.png"],
        // Outputs onto the checkpoint.
        ["segment", "D/a.png", "--weights", "D/w.pth", "-o", "D/w.pth"],
        ["segment", "D/a.png", "--weights", "D/w.pth", "--json", "D/w.pth"],
        ["segment", "D/a.png", "--weights", "D/w.pth", "--overlay", "D/w.pth"],
        // Onto the input list.
        ["detect", "--input-list", "D/l.txt", "--no-images", "--weights", "W_DET", "--json", "D/l.txt"],
        // Two outputs on one path.
        ["segment", "D/a.png", "--weights", "W_SEG", "-o", "D/x.png", "--json", "D/x.png"],
        ["segment", "D/a.png", "--weights", "W_SEG", "-o", "D/x.png", "--overlay", "D/x.png"],
        // Links to the input: hard, symbolic.
        ["segment", "D/a.png", "--weights", "W_SEG", "-o", "D/hard.png"],
        ["segment", "D/a.png", "--weights", "W_SEG", "--overlay", "D/soft.png"],
        ["detect", "D/a.png", "--weights", "W_DET", "-o", "D/soft.png"],
    ])
    func outputOntoAnInputIsRefusedAndNothingChanges(_ template: [String]) throws {
        let folder = try Self.pictureFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let d = folder.path
        try FileManager.default.copyItem(atPath: Self.segmenter, toPath: d + "/w.pth")
        try "\(d)/a.png\n\(d)/b.png\n".write(toFile: d + "/l.txt", atomically: true, encoding: .utf8)
        try FileManager.default.linkItem(atPath: d + "/a.png", toPath: d + "/hard.png")
        try FileManager.default.createSymbolicLink(atPath: d + "/soft.png", withDestinationPath: d + "/a.png")
        try FileManager.default.copyItem(atPath: d + "/a.png", toPath: d + "/c.mask.png")
        let before = try Self.snapshot(folder)
        let arguments = template.map {
            $0 == "W_DET" ? Self.detector : $0 == "W_SEG" ? Self.segmenter : $0 == "D" ? d : $0.hasPrefix("D/") ? d + $0.dropFirst() : $0
        }
        let result = try CLITests.run(arguments)
        #expect(result.status == 1, "\(template): status \(result.status), \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(template): \(result.stderr)")
        #expect(result.stderr.contains("refusing to write"), "\(template): \(result.stderr)")
        #expect(try Self.snapshot(folder) == before, "\(template): files changed")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: d + "/soft.png") == d + "/a.png")
    }

    /// SIGTERM and SIGINT at random moments of a run writing masks and overlays: the process ends
    /// by that signal and leaves no temporary file; a SIGKILL's leftovers are swept by the next run.
    @Test func signalsLeaveNoTemporaryFiles() throws {
        let folder = try Self.pictureFolder(count: 12)
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out").path
        var generator = SystemRandomNumberGenerator()
        var signalled = 0, killedMidWrite = 0
        for round in 0..<12 {
            let signal: Int32 = [SIGTERM, SIGINT, SIGKILL][round % 3]
            // Every finished file waits 300 ms before its rename: most signals find one in flight.
            let pid = try Self.spawnWithDefaultSignals(
                CLITests.binary.path, ["detect", folder.path, "--weights", Self.detector, "--out-dir", out, "--json", out + "/d.jsonl"],
                environment: ["EFFDENSE_TEST_PAUSE_BEFORE_RENAME_MS": "300"])
            usleep(UInt32.random(in: 300_000...1_500_000, using: &generator))
            kill(pid, signal)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            // WIFSIGNALED / WTERMSIG: the low 7 bits hold the signal that ended it.
            let endingSignal = status & 0x7f
            if endingSignal != 0 {
                signalled += 1
                #expect(endingSignal == signal, "ended by signal \(endingSignal), sent \(signal)")
            }
            let partial = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.contains(AtomicFile.partialMarker) }
            if signal != SIGKILL {
                #expect(partial.isEmpty, "round \(round), signal \(signal): left \(partial)")
            } else {
                killedMidWrite += partial.isEmpty ? 0 : 1
            }
        }
        #expect(signalled > 0, "no run was still going when signalled")
        // SIGKILL cannot be caught: it shows the files really were in flight when signals came.
        #expect(killedMidWrite > 0, "no SIGKILL found a temporary file in flight (\(signalled) runs ended by a signal)")
        // The next run (resuming) finishes the folder and sweeps what SIGKILL left, and a stale
        // temporary file of a process of this machine that is gone.
        let stale = out + "/.a.detections.png\(AtomicFile.partialMarker)\(AtomicFile.hostName)-4194000-1"
        try Data("half".utf8).write(to: URL(fileURLWithPath: stale))
        let result = try CLITests.run(["detect", folder.path, "--weights", Self.detector, "--out-dir", out, "--json", out + "/d.jsonl", "--resume"])
        #expect(result.status == 0, "\(result.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: out)
        #expect(!names.contains { $0.contains(AtomicFile.partialMarker) }, "\(names)")
        #expect(names.filter { $0.hasSuffix(".detections.png") }.count == 12)
        let lines = try readRecords(out + "/d.jsonl").compactMap { $0["image"] as? String }
        #expect(lines.count == 12 && Set(lines).count == 12, "\(lines)")
    }

    /// Starts `executable` with SIGINT and SIGTERM at their default actions and no signal
    /// blocked (the test runner's threads block them, and a mask is inherited across exec),
    /// stdout/stderr to /dev/null; returns its process id.
    static func spawnWithDefaultSignals(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "posix_spawn failed: \(result)"]) }
        return pid
    }

    /// `--resume` gives exactly one line per picture: after a --no-images run, after an output is
    /// deleted, and with the folder spelled three ways.
    @Test func resumeNeverDuplicatesLines() throws {
        let folder = try Self.pictureFolder(count: 4)
        defer { try? FileManager.default.removeItem(at: folder) }
        let json = folder.appendingPathComponent("out/d.jsonl").path
        let outDir = folder.appendingPathComponent("out").path
        func run(_ input: String, _ extra: [String] = [], in directory: String = CLITests.packageRoot.path) throws {
            let result = try runProcess(CLITests.binary.path, ["detect", input, "--weights", Self.detector, "--json", json, "--out-dir", outDir, "--resume"] + extra,
                                        in: directory)
            #expect(result.status == 0, "\(result.stderr)")
        }
        func expectOneLineEach(_ moment: String) throws {
            let images = try readRecords(json).compactMap { $0["image"] as? String }.map { URL(fileURLWithPath: $0, relativeTo: folder.deletingLastPathComponent()).standardizedFileURL.lastPathComponent }
            #expect(images.count == 4 && Set(images).count == 4, "\(moment): \(images)")
        }
        try run(folder.path, ["--no-images"])
        try expectOneLineEach("--no-images")
        try run(folder.path)   // the annotated pictures were missing: every picture again, once
        try expectOneLineEach("images after --no-images")
        try FileManager.default.removeItem(atPath: outDir + "/b.detections.png")
        try run(folder.path)
        try expectOneLineEach("one output deleted")
        #expect(FileManager.default.fileExists(atPath: outDir + "/b.detections.png"))
        try run(folder.path + "/")
        try run(folder.lastPathComponent, in: folder.deletingLastPathComponent().path)
        try run("./" + folder.lastPathComponent + "/.", in: folder.deletingLastPathComponent().path)
        try expectOneLineEach("the folder spelled differently")
    }

    /// A mask and its overlay land together: an overlay that cannot be written leaves no mask.
    @Test func maskAndOverlayAreAllOrNothing() throws {
        let folder = try Self.pictureFolder(count: 1)
        defer { try? FileManager.default.removeItem(at: folder) }
        let d = folder.path
        try Data("x".utf8).write(to: folder.appendingPathComponent("file"))
        let blocked = try CLITests.run(["segment", d + "/a.png", "--weights", Self.segmenter, "-o", d + "/m.png", "--overlay", d + "/file/o.png"])
        #expect(blocked.status == 1, "\(blocked.stderr)")
        #expect(blocked.stderr.split(separator: "\n").count == 1, "\(blocked.stderr)")
        #expect(!FileManager.default.fileExists(atPath: d + "/m.png"), "the mask was left behind")
        // Into a missing folder: created, both written.
        let fine = try CLITests.run(["segment", d + "/a.png", "--weights", Self.segmenter, "-o", d + "/m.png", "--overlay", d + "/new/o.png"])
        #expect(fine.status == 0, "\(fine.stderr)")
        #expect(FileManager.default.fileExists(atPath: d + "/m.png") && FileManager.default.fileExists(atPath: d + "/new/o.png"))
    }

    /// Messages say what a path is: a FIFO given as a picture, a folder given as -o; a name that
    /// is not UTF-8 in a folder walk is reported, not dropped in silence.
    @Test func pathsAreNamedForWhatTheyAre() throws {
        let folder = try Self.pictureFolder(count: 1)
        defer { try? FileManager.default.removeItem(at: folder) }
        let d = folder.path
        #expect(mkfifo(d + "/pipe.png", 0o644) == 0)
        let fifo = try CLITests.run(["detect", d + "/pipe.png", "--weights", Self.detector, "--no-images"])
        CLITests.expectOneLineError(fifo, naming: d + "/pipe.png")
        #expect(fifo.stderr.contains("FIFO"), "\(fifo.stderr)")
        try FileManager.default.createDirectory(atPath: d + "/dir.png", withIntermediateDirectories: true)
        let directory = try CLITests.run(["detect", d + "/a.png", "--weights", Self.detector, "-o", d + "/dir.png"])
        CLITests.expectOneLineError(directory, naming: d + "/dir.png")
        #expect(directory.stderr.contains("folder"), "\(directory.stderr)")
        // A device as the JSON output is written to, not replaced.
        let devNull = try CLITests.run(["detect", d + "/a.png", "--weights", Self.detector, "--no-images", "--json", "/dev/null"])
        #expect(devNull.status == 0, "\(devNull.stderr)")
        #expect(PathText.existingNonFile("/dev/null") != nil, "/dev/null was replaced")
        try FileManager.default.removeItem(atPath: d + "/pipe.png")
        try FileManager.default.removeItem(atPath: d + "/dir.png")
        // b<0xFF>.png: not UTF-8.
        let name: [UInt8] = Array(d.utf8) + Array("/b".utf8) + [0xFF] + Array(".png".utf8) + [0]
        let descriptor = name.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o644) }
        #expect(descriptor >= 0)
        close(descriptor)
        let walked = try CLITests.run(["detect", d, "--weights", Self.detector, "--no-images", "--json", "-"])
        #expect(walked.status == 0, "\(walked.stderr)")
        #expect(walked.stderr.contains("1 file skipped: name not valid UTF-8") && walked.stderr.contains("b\\xFF.png"), "\(walked.stderr)")
    }
}
