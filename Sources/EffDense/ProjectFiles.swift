import Foundation
import Yams

/// Finds effdense's data folders (`configs/`, `weights/`): `$EFFDENSE_HOME` if set, else
/// `<prefix>/share/effdense` beside an installed executable (`<prefix>/bin/effdense`, see
/// scripts/install.sh), else the package checkout the executable was built in, else the current
/// directory.
public enum ProjectFiles {
    /// The first existing file at `relativePath` under the search roots.
    public static func locate(_ relativePath: String) -> URL? {
        for root in searchRoots {
            let candidate = root.appendingPathComponent(relativePath)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    static var searchRoots: [URL] {
        var roots: [URL] = []
        if let home = ProcessInfo.processInfo.environment["EFFDENSE_HOME"], !home.isEmpty {
            roots.append(URL(fileURLWithPath: home))
        }
        var folder = executableFolder
        // An installed executable: <prefix>/bin/effdense with <prefix>/share/effdense.
        roots.append(folder.deletingLastPathComponent().appendingPathComponent("share/effdense"))
        // .build/<config>/effdense or .build/<triple>/<config>/effdense inside the checkout.
        for _ in 0..<4 {
            folder = folder.deletingLastPathComponent()
            roots.append(folder)
        }
        roots.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        return roots
    }

    /// The folder of the running executable (`/proc/self/exe`: argv[0] may be a bare name found
    /// through PATH).
    static var executableFolder: URL {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? "."
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// Class names, one per line.
    public static func labels(_ path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(path, FileManager.default.fileExists(atPath: path) ? "cannot read the label file (not UTF-8 text?)" : "no such label file")
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }
}

/// Decodes a YAML configuration file, naming the file and the field in every error.
func loadYAML<T: Decodable>(_ type: T.Type, contentsOf path: String) throws -> T {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ConfigError(path, FileManager.default.fileExists(atPath: path) ? "cannot read the config file" : "no such config file")
    }
    do {
        return try YAMLDecoder().decode(T.self, from: text)
    } catch let DecodingError.keyNotFound(key, _) {
        throw ConfigError(path, "missing field '\(key.stringValue)'")
    } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
        throw ConfigError(path, "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
    } catch {
        throw ConfigError(path, "not a valid YAML config (\(error))".replacingOccurrences(of: "\n", with: " "))
    }
}

/// A configuration or label file that cannot be used, naming the file and the problem.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String
    public init(_ file: String, _ problem: String) { self.file = file; self.problem = problem }
    public var description: String { "\(file): \(problem)" }
}
