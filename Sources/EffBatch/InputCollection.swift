import EffCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One picture of a batch run: where it is, and where it sits in the tree that `--out-dir`
/// mirrors (relative to the folder or glob it was found through; a file named on its own sits
/// at the top).
public struct InputPicture: Sendable, Hashable {
    /// The path as the user gave it (or as found under a folder they gave).
    public let path: String
    /// Its place in the mirrored output tree, e.g. `holiday/beach.jpg`.
    public let relativePath: String

    public init(path: String, relativePath: String) {
        self.path = path
        self.relativePath = relativePath
    }
}

/// A problem with the list of inputs itself (not with one picture): it stops the run before the
/// model is loaded.
public struct InputError: Error, CustomStringConvertible, Equatable {
    public let source: String
    public let problem: String
    public init(_ source: String, _ problem: String) {
        self.source = source
        self.problem = problem
    }
    public var description: String { "\(source): \(problem)" }
}

/// Turns command-line arguments — files, folders, glob patterns — and `--input-list` files into
/// the ordered list of pictures to process. Pictures are recognised by content when read, so a
/// folder's every regular file is an input (a file that is not a picture effdense reads is reported then, like
/// any broken picture), except hidden files and effdense's own outputs.
public struct InputCollector: Sendable {
    /// Descend into sub-folders of folders given.
    public var recursive: Bool
    /// File name endings never taken from a folder: effdense's own outputs (`.detections.png`, ...).
    public var excludedSuffixes: [String]
    /// Paths never taken from a folder: the output folder, the JSON file.
    public var excludedPaths: [String]

    /// Take from folders and patterns only files named as pictures (`pictureExtensions`), as
    /// ultralytics does; off: every regular file, recognised by content.
    public var picturesByName: Bool

    /// With `picturesByName`, also take files named as videos (`videoExtensions`).
    public var videosByName: Bool

    public init(recursive: Bool = false, excludedSuffixes: [String] = [], excludedPaths: [String] = [], picturesByName: Bool = false,
                videosByName: Bool = false) {
        self.recursive = recursive
        self.excludedSuffixes = excludedSuffixes
        self.excludedPaths = excludedPaths
        self.picturesByName = picturesByName
        self.videosByName = videosByName
    }

    /// The pictures named by `arguments` then by the lines of `inputList` (a file, `-` for
    /// standard input; blank lines and `#` comments skipped; each line is treated like an
    /// argument). Folder contents come sorted by path; a picture reached twice is kept once.
    /// A path that does not exist is kept: it fails later as that picture's own error.
    public func collect(arguments: [String], inputList: String? = nil) throws -> [InputPicture] {
        try collectReportingSkipped(arguments: arguments, inputList: inputList).pictures
    }

    /// What `collectReportingSkipped` found and left out.
    public struct Collection {
        public var pictures: [InputPicture] = []
        /// Files of folders and patterns left out because `picturesByName` is on and their names
        /// are not pictures' (README.md, notes.txt, weights.pth...).
        public var skipped: [String] = []
        /// Entries of walked folders whose names are not valid UTF-8 (not representable as a
        /// path here): the folder, a '/' and the name with its bytes escaped.
        public var unreadableNames: [String] = []
    }

    /// `collect`, and what folder walks left out, for the caller to report.
    public func collectReportingSkipped(arguments: [String], inputList: String? = nil) throws -> Collection {
        var entries = arguments
        if let inputList { entries += try Self.readList(inputList) }
        var seen = Set<String>(), collection = Collection()
        let excluded = Set(excludedPaths.map(Self.canonical))
        for entry in entries {
            for picture in try expand(entry, excluded: excluded, collection: &collection) where seen.insert(Self.canonical(picture.path)).inserted {
                collection.pictures.append(picture)
            }
        }
        return collection
    }

    /// Picture file name extensions (ultralytics' IMG_FORMATS): with `picturesByName`, the only
    /// files taken from folders and patterns. Formats effdense cannot decode are still taken,
    /// so they are reported rather than passed over.
    public static let pictureExtensions: Set<String> = ["bmp", "dng", "jpeg", "jpg", "jpe", "jfif", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic", "gif",
                                                        // Whole-slide images (OpenSlide's formats).
                                                        "svs", "ndpi", "mrxs", "scn", "bif", "vms", "svslide"]

    /// Video file name extensions (ultralytics' VID_FORMATS).
    public static let videoExtensions: Set<String> = ["asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv", "webm"]

    /// Whether a file name ends in a picture extension (any case).
    public static func isPictureName(_ name: String) -> Bool { hasExtension(name, among: pictureExtensions) }

    /// Whether a file name ends in a video extension (any case).
    public static func isVideoName(_ name: String) -> Bool { hasExtension(name, among: videoExtensions) }

    private static func hasExtension(_ name: String, among extensions: Set<String>) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return extensions.contains(name[name.index(after: dot)...].lowercased())
    }

    static func readList(_ list: String) throws -> [String] {
        let data: Data
        if list == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: list))
            } catch {
                throw InputError(list, "cannot read the input list (\(FileManager.default.fileExists(atPath: list) ? "unreadable" : "no such file"))")
            }
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InputError(list == "-" ? "standard input" : list, "the input list is not UTF-8 text")
        }
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    private func expand(_ entry: String, excluded: Set<String>, collection: inout Collection) throws -> [InputPicture] {
        // Files found through a folder or a pattern are pictures by name when `picturesByName`
        // (a file named on its own is always taken, and recognised by content).
        func byName(_ found: [InputPicture]) -> [InputPicture] {
            guard picturesByName else { return found }
            let taken = { (picture: InputPicture) in
                let name = Self.lastComponent(picture.path)
                return Self.isPictureName(name) || videosByName && Self.isVideoName(name)
            }
            let (kept, left) = (found.filter(taken), found.filter { !taken($0) })
            collection.skipped += left.map(\.path)
            return kept
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: entry, isDirectory: &isDirectory) {
            return isDirectory.boolValue ? byName(try walk(entry, excluded: excluded, unreadable: &collection.unreadableNames)) : [InputPicture(path: entry, relativePath: Self.lastComponent(entry))]
        }
        guard entry.contains(where: { "*?[".contains($0) }) else {
            return [InputPicture(path: entry, relativePath: Self.lastComponent(entry))]
        }
        // A pattern the shell did not expand (quoted, or from a list): expand it here.
        let base = Self.fixedPrefix(of: entry)
        return byName(try Self.glob(entry).flatMap { match -> [InputPicture] in
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: match, isDirectory: &isFolder) else { return [] }
            if isFolder.boolValue { return try walk(match, excluded: excluded, unreadable: &collection.unreadableNames).map { InputPicture(path: $0.path, relativePath: Self.relative(match, to: base) + "/" + $0.relativePath) } }
            return [InputPicture(path: match, relativePath: Self.relative(match, to: base))]
        })
    }

    /// The regular files of `folder` (and its sub-folders when recursive), sorted by path.
    private func walk(_ folder: String, excluded: Set<String>, unreadable: inout [String]) throws -> [InputPicture] {
        let root = URL(fileURLWithPath: folder)
        var found: [InputPicture] = []
        var pending = [""]
        while let relative = pending.popLast() {
            let directory = relative.isEmpty ? root : root.appendingPathComponent(relative)
            let listing = try Self.list(directory.path)
            unreadable += listing.unreadable.map { PathText.join(directory.path, $0) }
            for name in listing.names where !name.hasPrefix(".") {
                let child = relative.isEmpty ? name : relative + "/" + name
                let path = PathText.join(folder, child)
                if excluded.contains(Self.canonical(path)) { continue }
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
                if isDirectory.boolValue {
                    if recursive, !Self.isSymbolicLink(path) { pending.append(child) }
                } else if !excludedSuffixes.contains(where: { name.hasSuffix($0) }) {
                    found.append(InputPicture(path: path, relativePath: child))
                }
            }
        }
        return found.sorted { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
    }

    /// The entries of a folder (readdir): names that are valid UTF-8, and the others with their
    /// bytes escaped (\\xFF) — Foundation's listing would drop those without a word.
    static func list(_ folder: String) throws -> (names: [String], unreadable: [String]) {
        guard let directory = opendir(folder) else {
            throw InputError(folder, "cannot list the folder (\(PathText.notARegularFile(folder) ?? String(cString: strerror(errno))))")
        }
        defer { closedir(directory) }
        var names: [String] = [], unreadable: [String] = []
        while let entry = readdir(directory) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes == Array(".".utf8) || bytes == Array("..".utf8) { continue }
            if let name = String(validating: bytes, as: UTF8.self) {
                names.append(name)
            } else if bytes.first != UInt8(ascii: ".") {
                unreadable.append(bytes.map { $0 < 0x80 ? String(UnicodeScalar($0)) : String(format: "\\x%02X", $0) }.joined())
            }
        }
        return (names, unreadable)
    }

    private static func glob(_ pattern: String) throws -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        let status = Glibc.glob(pattern, 0, nil, &result)
        if status == GLOB_NOMATCH { return [] }
        guard status == 0 else { throw InputError(pattern, "cannot expand the pattern") }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// The folders of `pattern` before its first wildcard component ("" when it starts with one).
    static func fixedPrefix(of pattern: String) -> String {
        let components = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let fixed = components.prefix { !$0.contains(where: { "*?[".contains($0) }) }
        return fixed.joined(separator: "/")
    }

    static func relative(_ path: String, to base: String) -> String {
        guard !base.isEmpty, path.hasPrefix(base + "/") else { return path }
        return String(path.dropFirst(base.count + 1))
    }

    static func lastComponent(_ path: String) -> String { PathText.lastComponent(path) }

    /// `--input-root`: each picture placed in the output tree (and in `--shard`'s hash) by its
    /// path below `root`, however it was named — a folder, a pattern, a line of a list — so
    /// separate processes given parts of a corpus as lists (Spark's `RDD.pipe`) name outputs
    /// as one run over `root` does. A picture outside `root` is an error for the whole run.
    public static func placing(_ pictures: [InputPicture], under root: String) throws -> [InputPicture] {
        let base = canonical(root)
        let prefix = base.hasSuffix("/") ? base : base + "/"
        return try pictures.map { picture in
            // The folder's symbolic links resolved, not the picture's own: a linked picture stays where it is named.
            let path = PathText.join(canonical(PathText.parent(picture.path)), lastComponent(picture.path))
            guard path.hasPrefix(prefix) else {
                throw InputError(picture.path, "not inside --input-root \(root)")
            }
            return InputPicture(path: picture.path, relativePath: String(path.dropFirst(prefix.count)))
        }
    }

    /// `path` absolute, standardised, symbolic links resolved: one spelling per file.
    public static func canonical(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    private static func isSymbolicLink(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) == .typeSymbolicLink
    }
}

/// `--shard I/N`: a deterministic share of the inputs, chosen by a hash of each picture's
/// relative path — independent of the other inputs, the machine and the order — so N processes
/// given the same inputs cover them with no overlap and no coordinator.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// 0-based, below `count` (as Kubernetes' JOB_COMPLETION_INDEX or a 0-based Slurm array).
    public let index: Int
    public let count: Int

    /// Parses `I/N`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, (0..<count).contains(index) else {
            throw InputError("--shard", "expected I/N with 0 <= I < N (e.g. 0/4), found '\(text)'")
        }
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// Whether `picture` belongs to this shard.
    public func contains(_ picture: InputPicture) -> Bool {
        // FNV-1a, 64 bit: stable across runs and machines (Swift's Hasher is seeded per process).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in picture.relativePath.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(count)) == index
    }
}

/// Where each picture's files go: `folder/<relative path without extension><suffix>` with
/// `--out-dir`, else beside the input. Two pictures that would share a name (`a.jpg`, `a.png`)
/// keep their extension in it (`a.jpg.mask.png`). Decided over all inputs, before sharding, so
/// every shard names files the same way.
public struct OutputNaming: Sendable {
    private let bases: [InputPicture: String]

    /// `stemsFromFolders` (`--input-root`): a picture also keeps its extension when its own
    /// folder holds another picture of the same stem, given to this process or not — a rule
    /// each of several processes sharing `folder` applies alike.
    public init(_ pictures: [InputPicture], folder: String?, stemsFromFolders: Bool = false) {
        func base(_ picture: InputPicture, keepExtension: Bool) -> String {
            let relative = folder == nil ? InputCollector.lastComponent(picture.path) : picture.relativePath
            let stem = keepExtension ? relative : PathText.deletingExtension(relative)
            let directory = folder ?? PathText.parent(picture.path)
            return PathText.join(directory, Self.safe(stem))
        }
        var counts: [String: Int] = [:]
        for picture in pictures { counts[base(picture, keepExtension: false), default: 0] += 1 }
        var stemsByFolder: [String: [String: Int]] = [:]
        func picturesInFolder(sharingStemWith picture: InputPicture) -> Int {
            let parent = PathText.parent(picture.path)
            if stemsByFolder[parent] == nil {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent)) ?? []
                var stems: [String: Int] = [:]
                for name in names where !name.hasPrefix(".") && InputCollector.isPictureName(name) { stems[PathText.deletingExtension(name), default: 0] += 1 }
                stemsByFolder[parent] = stems
            }
            return stemsByFolder[parent]?[PathText.deletingExtension(InputCollector.lastComponent(picture.path))] ?? 0
        }
        var bases: [InputPicture: String] = [:], taken = Set<String>()
        for picture in pictures {
            let shared = counts[base(picture, keepExtension: false), default: 0] > 1 || (stemsFromFolders && picturesInFolder(sharingStemWith: picture) > 1)
            var name = base(picture, keepExtension: shared)
            if taken.contains(name) {
                var n = 2
                while taken.contains("\(name)-\(n)") { n += 1 }
                name = "\(name)-\(n)"
            }
            taken.insert(name)
            bases[picture] = name
        }
        self.bases = bases
    }

    /// The output path of `picture` ending in `suffix` (e.g. `.detections.png`).
    public func path(for picture: InputPicture, suffix: String) -> String {
        (bases[picture] ?? PathText.deletingExtension(picture.path)) + suffix
    }

    /// A relative path with `..` and empty components made harmless, so it stays inside the folder.
    static func safe(_ relative: String) -> String {
        relative.split(separator: "/").map { $0 == ".." ? "__" : String($0) }.filter { $0 != "." }.joined(separator: "/")
    }
}
