import EffImage
import Foundation
import Testing

/// Input paths a user can type or a folder can hold, run through classify, detect and segment:
/// each ends with exit status 0 or 1 and at most one line on stderr — never a signal (a
/// one-character path once trapped in Foundation's path code), never a hang (a FIFO).
@Suite struct OddPathTests {
    static let segmentationWeights = CLITests.packageRoot
        .appendingPathComponent("Tests/EffDenseTests/Fixtures/segmentation/deeplabv3plus_efficientnet_b0.pth").path

    /// Paths as printf formats, so newlines and bytes that are not UTF-8 reach argv unchanged.
    static let paths = [
        "-", "x", "./x", "--", "a b.png", "new\\nline.png", "\\377\\376.png", "-dash.png", "--dash.png",
        String(repeating: "a", count: 300) + ".png", "x.png", "fifo.png", "loop", "loop2", "link.png", "",
    ]

    /// A folder holding the odd files: pictures named with a space, a newline, bytes that are not
    /// UTF-8 and a leading dash; a folder named x.png; a FIFO; symbolic link loops; a good link.
    static func oddFolder() throws -> URL {
        let folder = try CLITests.temporaryFolder()
        let setup = """
            cp "$1" 'a b.png' && cp "$1" "$(printf 'new\\nline.png')" && cp "$1" "$(printf '\\377\\376.png')" \
            && cp "$1" ./-dash.png && mkdir x.png && mkfifo fifo.png && ln -s loop loop && ln -s loop2 loop3 \
            && ln -s loop3 loop2 && ln -s 'a b.png' link.png
            """
        let result = try shell(setup, in: folder, arguments: [CLITests.packageRoot.appendingPathComponent("samples/coffee.jpg").path])
        #expect(result.status == 0, "\(result.stderr)")
        return folder
    }

    static func shell(_ script: String, in folder: URL, arguments: [String]) throws -> CLITests.Result {
        try runProcess("/bin/sh", ["-c", script, "sh"] + arguments, in: folder.path)
    }

    @Test(arguments: ["classify", "detect", "segment"])
    func oddInputPathsEndInStatusZeroOrOneWithOneLine(command: String) throws {
        let folder = try Self.oddFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let weights: [String] = switch command {
        case "detect": ["--weights", DetectCLITests.weights]
        case "segment": ["--weights", Self.segmentationWeights]
        default: []
        }
        let outputs: [[String]] = command == "classify" ? [[]] : [[], ["-o", "out.png"]]
        for path in Self.paths {
            for output in outputs {
                // The path goes through printf; timeout: a FIFO read would block forever (124 fails below).
                let script = "b=$1; c=$2; p=$(printf \"x$3\"); p=${p#x}; shift 3; exec timeout -k 5 60 \"$b\" \"$c\" \"$p\" \"$@\""
                let extra = output + weights
                let result = try Self.shell(script, in: folder, arguments: [CLITests.binary.path, command, path] + extra)
                let what = "\(command) '\(path)' \(output.joined(separator: " "))"
                #expect(result.status == 0 || result.status == 1, "\(what): exit \(result.status); \(result.stderr)")
                let lines = result.stderr.split(separator: "\n")
                #expect(result.status == 0 ? lines.isEmpty : lines.count == 1, "\(what): stderr \(result.stderr)")
            }
        }
    }
}

/// Small things a new user meets first.
@Suite struct FirstContactTests {
    /// A folder of photos holding a README: the README is left out (and said so), the run succeeds.
    @Test func folderWithAReadmeIsClassified() throws {
        let result = try CLITests.run(["classify", "samples/", "--top", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("1 file skipped: not named as pictures or videos (README.md)"), "\(result.stderr)")
        #expect(result.stderr.contains("4 pictures: 4 done"), "\(result.stderr)")
    }

    @Test func jsonIntoAMissingFolderIsCreatedAndOnePictureIsSingular() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let json = folder.appendingPathComponent("new/deeper/out.jsonl").path
        let result = try CLITests.run(["classify", "samples/coffee.jpg", "--input-list", "-", "--json", json], input: Data())
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: json))
        #expect(result.stderr.contains("1 picture: 1 done"), "\(result.stderr)")
    }

    /// A thread count far past the cores is capped (with a note), not a hang or a crash.
    @Test func hugeThreadCountIsCapped() throws {
        let result = try CLITests.run(["classify", "samples/coffee.jpg", "--top", "1", "--threads", "100000"])
        #expect(result.status == 0 && result.stdout.contains("espresso"), "\(result.stderr)")
        #expect(result.stderr.contains("--threads 100000 is more than 4 x the"), "\(result.stderr)")
    }

    /// --line-width and --hide-labels reach the drawing: no tag colour above the best box, and a
    /// line width outside 1...100 is a flag error.
    @Test func drawingFlags() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let plain = folder.appendingPathComponent("plain.png").path, bare = folder.appendingPathComponent("bare.png").path
        let common = ["detect", "samples/coffee.jpg", "--weights", DetectCLITests.weights, "--max-detections", "1"]
        #expect(try CLITests.run(common + ["-o", plain]).status == 0)
        #expect(try CLITests.run(common + ["-o", bare, "--hide-labels", "--line-width", "1"]).status == 0)
        let original = try ImageCodec.decode(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/coffee.jpg").path)
        func changed(_ path: String) throws -> Int {
            let image = try ImageCodec.decode(contentsOf: path)
            return zip(image.pixels, original.pixels).filter { $0 != $1 }.count
        }
        #expect(try changed(bare) < changed(plain), "a 1-pixel box without its tag changes fewer pixels")
        let bad = try CLITests.run(common + ["-o", bare, "--line-width", "0"])
        #expect(bad.status == 1 && bad.stderr.contains("--line-width"))
    }

    @Test func versionIsPrinted() throws {
        let result = try CLITests.run(["--version"])
        #expect(result.status == 0 && result.stdout.hasPrefix("effdense "), "\(result.stdout) \(result.stderr)")
    }
}

/// scripts/install.sh puts effdense on a prefix's bin/ with its configs in share/effdense and
/// the real Lite0 in the user cache: it then runs from any folder, far from the checkout.
@Suite struct InstallTests {
    @Test func installedBinaryRunsFromTheRootFolder() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let prefix = folder.appendingPathComponent("prefix").path, cache = folder.appendingPathComponent("cache").path
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CACHE_HOME"] = cache
        environment["EFFDENSE_HOME"] = nil
        func run(_ executable: String, _ arguments: [String], in directory: String) throws -> CLITests.Result {
            try runProcess(executable, arguments, in: directory, environment: environment)
        }
        let install = try run("/bin/bash", [CLITests.packageRoot.appendingPathComponent("scripts/install.sh").path,
                                            "--prefix", prefix, "--binary", CLITests.binary.path], in: CLITests.packageRoot.path)
        #expect(install.status == 0, "\(install.stdout) \(install.stderr)")
        let effdense = prefix + "/bin/effdense"
        let sample = CLITests.packageRoot.appendingPathComponent("samples/coffee.jpg").path
        let classify = try run(effdense, ["classify", sample, "--top", "1"], in: "/")
        #expect(classify.status == 0 && classify.stdout.contains("espresso"), "\(classify.stdout) \(classify.stderr)")
        let annotated = folder.appendingPathComponent("coffee.detections.png").path
        let detect = try run(effdense, ["detect", sample, "--weights", DetectCLITests.weights, "-o", annotated], in: "/")
        #expect(detect.status == 0 && FileManager.default.fileExists(atPath: annotated), "\(detect.stdout) \(detect.stderr)")
        let version = try run(effdense, ["--version"], in: "/")
        #expect(version.stdout.hasPrefix("effdense "))
    }
}

/// A phone photo stored turned, with its EXIF orientation: classified and annotated upright.
@Suite struct ExifCLITests {
    static let folder = CLITests.packageRoot.appendingPathComponent("Tests/EffImageTests/Fixtures/exif")

    @Test(arguments: [6, 3])
    func rotatedPhotoIsReadUpright(orientation: Int) throws {
        let photo = Self.folder.appendingPathComponent("coffee_exif\(orientation).jpg").path
        let upright = try CLITests.run(["classify", "samples/coffee.jpg", "--top", "1", "--json", "-"])
        let turned = try CLITests.run(["classify", photo, "--top", "1", "--json", "-"])
        func top(_ result: CLITests.Result) throws -> String? {
            let record = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            return ((record?["predictions"] as? [[String: Any]])?.first)?["label"] as? String
        }
        #expect(upright.status == 0 && turned.status == 0, "\(turned.stderr)")
        #expect(try top(turned) == top(upright) && (try top(upright)) == "espresso", "\(turned.stdout)")

        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let annotated = folder.appendingPathComponent("out.png").path, raw = folder.appendingPathComponent("raw.png").path
        let detect = try CLITests.run(["detect", photo, "--weights", DetectCLITests.weights, "-o", annotated])
        #expect(detect.status == 0, "\(detect.stderr)")
        let image = try ImageCodec.decode(contentsOf: annotated)
        #expect(image.width == 600 && image.height == 400, "the annotated picture is \(image.width)x\(image.height), not upright")
        let ignored = try CLITests.run(["detect", photo, "--weights", DetectCLITests.weights, "-o", raw, "--ignore-orientation"])
        #expect(ignored.status == 0)
        let stored = try ImageCodec.decode(contentsOf: raw)
        #expect(orientation == 6 ? (stored.width == 400 && stored.height == 600) : (stored.width == 600 && stored.height == 400))
    }
}

/// The model comes from the checkpoint when no flag names it; a flag that contradicts the file
/// is an error naming the file's model.
@Suite struct ModelFromCheckpointTests {
    static let fixtures = CLITests.packageRoot.appendingPathComponent("Tests/EffDenseTests/Fixtures")

    static func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try CLITests.run(arguments + ["--json", "-"])
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    @Test func detectorClassifierAndSegmenterAreInferred() throws {
        let detector = Self.fixtures.appendingPathComponent("detection/tf_efficientdet_d0.pth").path
        let inferred = try Self.json(["detect", "samples/coffee.jpg", "--weights", detector, "--no-images"])
        let named = try Self.json(["detect", "samples/coffee.jpg", "--weights", detector, "--no-images", "--model", "tf_efficientdet_d0"])
        #expect(inferred["model"] as? String == "tf_efficientdet_d0")
        #expect(NSArray(array: inferred["detections"] as? [Any] ?? []) == NSArray(array: named["detections"] as? [Any] ?? []))
        #expect((inferred["detections"] as? [Any])?.count == 100)

        let lite0 = CLITests.realLite0
        let classified = try Self.json(["classify", "samples/coffee.jpg", "--weights", lite0, "--top", "3"])
        let classifiedNamed = try Self.json(["classify", "samples/coffee.jpg", "--weights", lite0, "--top", "3", "--model", "tf_efficientnet_lite0"])
        #expect(classified["model"] as? String == "efficientnet-lite0")
        #expect(NSArray(array: classified["predictions"] as? [Any] ?? []) == NSArray(array: classifiedNamed["predictions"] as? [Any] ?? []))

        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        for encoder in ["efficientnet-b0", "timm-efficientnet-b0"] {
            let weights = Self.fixtures.appendingPathComponent("segmentation/deeplabv3plus_\(encoder.replacingOccurrences(of: "-", with: "_")).pth").path
            let a = folder.appendingPathComponent("a.png").path, b = folder.appendingPathComponent("b.png").path
            let inferredRun = try CLITests.run(["segment", "samples/coffee.jpg", "--weights", weights, "-o", a])
            let namedRun = try CLITests.run(["segment", "samples/coffee.jpg", "--weights", weights, "-o", b, "--encoder", encoder])
            #expect(inferredRun.status == 0 && namedRun.status == 0, "\(inferredRun.stderr) \(namedRun.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)), "\(encoder): masks differ")
        }
    }

    @Test func contradictingFlagNamesTheFilesModel() throws {
        let detector = Self.fixtures.appendingPathComponent("detection/tf_efficientdet_d0.pth").path
        let segmenter = Self.fixtures.appendingPathComponent("segmentation/deeplabv3plus_timm_efficientnet_b0.pth").path
        let cases: [([String], String, String)] = [
            (["detect", "samples/coffee.jpg", "--weights", detector, "--model", "d3", "--no-images"], detector, "the detector tf_efficientdet_d0"),
            (["classify", "samples/coffee.jpg", "--weights", CLITests.realLite0, "--model", "tf_efficientnet_b3"], CLITests.realLite0,
             "the classifier efficientnet-lite0"),
            (["segment", "samples/coffee.jpg", "--weights", segmenter, "--encoder", "efficientnet-b0", "-o", "/tmp/effdense-unused.png"], segmenter,
             "the timm-efficientnet-b0 encoder"),
            (["detect", "samples/coffee.jpg", "--weights", CLITests.realLite0, "--no-images"], CLITests.realLite0, "not an EfficientDet"),
        ]
        for (arguments, file, message) in cases {
            let result = try CLITests.run(arguments)
            CLITests.expectOneLineError(result, naming: file)
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }
}

/// The overlay's legend is whole and inside the output at any picture size: on a band beside or
/// below a small picture, inside a large one.
@Suite struct OverlayLegendTests {
    @Test func legendFitsSmallAndLargePictures() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let chelsea = try ImageCodec.decode(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/chelsea.png").path)
        for (width, height) in [(96, 64), (300, 200), (4000, 3000)] {
            let picture = folder.appendingPathComponent("c\(width).png").path
            try ImageCodec.writePNG(try chelsea.resized(width: width, height: height, filter: .bilinear), to: picture)
            let overlay = folder.appendingPathComponent("o\(width).png").path
            let result = try CLITests.run(["segment", picture, "--weights", OddPathTests.segmentationWeights,
                                           "-o", folder.appendingPathComponent("m\(width).png").path, "--overlay", overlay])
            #expect(result.status == 0, "\(result.stderr)")
            let out = try ImageCodec.decode(contentsOf: overlay)
            if width < 1000 {
                #expect(out.height > height || out.width > width, "\(width)x\(height): the legend did not get its own band")
            } else {
                #expect(out.width == width && out.height == height, "\(width)x\(height): a large picture keeps its size")
            }
        }
    }
}

/// Runs `executable` in `directory` and collects its exit status and output; a death by signal
/// is a test failure of its own.
func runProcess(_ executable: String, _ arguments: [String], in directory: String,
                environment: [String: String]? = nil) throws -> CLITests.Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationReason == .exit, "killed by signal \(process.terminationStatus): \(executable) \(arguments)")
    return CLITests.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                           stderr: String(decoding: stderr, as: UTF8.self))
}
