import Foundation

/// A problem with an annotation or results file: which file, where in it, what is wrong.
public struct EvaluationInputError: Error, CustomStringConvertible {
    public let file: String
    public let problem: String
    public init(_ file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }
    public var description: String { "\(file): \(problem)" }
}

/// A COCO-format ground truth (`instances_val2017.json`): images, categories and box annotations.
public struct COCOGroundTruth: Sendable {
    public struct Image: Sendable {
        public let id: Int
        public let fileName: String
    }
    public struct Category: Sendable {
        public let id: Int
        public let name: String
    }
    public struct Annotation: Sendable {
        public let id: Int
        public let imageID: Int
        public let categoryID: Int
        /// x, y, width, height.
        public let box: [Double]
        /// The annotation's own `area` field (a polygon's area, not the box's): it decides the
        /// small / medium / large ranges, as in pycocotools.
        public let area: Double
        public let isCrowd: Bool
    }

    public let images: [Image]
    public let categories: [Category]
    public let annotations: [Annotation]

    public init(images: [Image], categories: [Category], annotations: [Annotation]) {
        self.images = images
        self.categories = categories
        self.annotations = annotations
    }

    /// Reads a COCO annotation file; a missing or mistyped field is an error naming it and the
    /// entry (`annotations[12]: missing field 'area'`).
    public init(contentsOf path: String) throws {
        let object = try Self.readJSON(path)
        guard let root = object as? [String: Any] else { throw EvaluationInputError(path, "not a COCO annotation file (a JSON object with images, annotations, categories)") }
        func list(_ key: String) throws -> [[String: Any]] {
            guard let value = root[key] else { throw EvaluationInputError(path, "missing field '\(key)'") }
            guard let items = value as? [[String: Any]] else { throw EvaluationInputError(path, "'\(key)' is not a list of objects") }
            return items
        }
        let fields = FieldReader(file: path)
        images = try list("images").enumerated().map { i, item in
            Image(id: try fields.int(item, "id", at: "images[\(i)]"), fileName: try fields.string(item, "file_name", at: "images[\(i)]"))
        }
        categories = try list("categories").enumerated().map { i, item in
            Category(id: try fields.int(item, "id", at: "categories[\(i)]"), name: (item["name"] as? String) ?? "")
        }
        let imageIDs = Set(images.map(\.id)), categoryIDs = Set(categories.map(\.id))
        annotations = try list("annotations").enumerated().map { i, item in
            let place = "annotations[\(i)]"
            let annotation = Annotation(
                id: try fields.int(item, "id", at: place), imageID: try fields.int(item, "image_id", at: place),
                categoryID: try fields.int(item, "category_id", at: place), box: try fields.box(item, at: place),
                area: try fields.double(item, "area", at: place),
                isCrowd: ((item["iscrowd"] as? NSNumber)?.intValue ?? 0) != 0)
            guard imageIDs.contains(annotation.imageID) else {
                throw EvaluationInputError(path, "\(place): image_id \(annotation.imageID) is not among the images")
            }
            guard categoryIDs.contains(annotation.categoryID) else {
                throw EvaluationInputError(path, "\(place): category_id \(annotation.categoryID) is not among the categories")
            }
            return annotation
        }
        guard Set(images.map(\.id)).count == images.count else { throw EvaluationInputError(path, "two images share an id") }
    }

    static func readJSON(_ path: String) throws -> Any {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw EvaluationInputError(path, FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        do {
            return try JSONSerialization.jsonObject(with: data)
        } catch {
            throw EvaluationInputError(path, "not valid JSON")
        }
    }
}

/// One detection in COCO's results format: `{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`.
public struct COCODetection: Sendable, Equatable {
    public let imageID: Int
    public let categoryID: Int
    public let box: [Double]
    public let score: Double

    public init(imageID: Int, categoryID: Int, box: [Double], score: Double) {
        self.imageID = imageID
        self.categoryID = categoryID
        self.box = box
        self.score = score
    }

    /// Reads a COCO results file (a JSON list); every image id must be one of `groundTruth`'s,
    /// as pycocotools' loadRes asserts.
    public static func read(contentsOf path: String, groundTruth: COCOGroundTruth) throws -> [COCODetection] {
        guard let items = try COCOGroundTruth.readJSON(path) as? [[String: Any]] else {
            throw EvaluationInputError(path, "not a COCO results file (a JSON list of detections)")
        }
        let fields = FieldReader(file: path)
        let imageIDs = Set(groundTruth.images.map(\.id))
        return try items.enumerated().map { i, item in
            let place = "[\(i)]"
            let detection = COCODetection(imageID: try fields.int(item, "image_id", at: place), categoryID: try fields.int(item, "category_id", at: place),
                                          box: try fields.box(item, at: place), score: try fields.double(item, "score", at: place))
            guard imageIDs.contains(detection.imageID) else {
                throw EvaluationInputError(path, "\(place): image_id \(detection.imageID) is not an image of the annotations")
            }
            return detection
        }
    }

    /// A COCO results file's text: full precision, in the given order.
    public static func resultsJSON(_ detections: [COCODetection]) throws -> Data {
        try JSONSerialization.data(withJSONObject: detections.map {
            ["image_id": $0.imageID, "category_id": $0.categoryID, "bbox": $0.box, "score": $0.score] as [String: Any]
        }, options: [.sortedKeys])
    }
}

/// Typed fields of JSON objects, with errors that name the field and the entry.
struct FieldReader {
    let file: String

    func value(_ item: [String: Any], _ key: String, at place: String) throws -> Any {
        guard let value = item[key] else { throw EvaluationInputError(file, "\(place): missing field '\(key)'") }
        return value
    }

    func int(_ item: [String: Any], _ key: String, at place: String) throws -> Int {
        guard let number = try value(item, key, at: place) as? NSNumber, number.doubleValue.rounded() == number.doubleValue,
              abs(number.doubleValue) < 1e15 else {
            throw EvaluationInputError(file, "\(place): '\(key)' is not an integer")
        }
        return number.intValue
    }

    func double(_ item: [String: Any], _ key: String, at place: String) throws -> Double {
        guard let number = try value(item, key, at: place) as? NSNumber, number.doubleValue.isFinite else {
            throw EvaluationInputError(file, "\(place): '\(key)' is not a number")
        }
        return number.doubleValue
    }

    func string(_ item: [String: Any], _ key: String, at place: String) throws -> String {
        guard let text = try value(item, key, at: place) as? String else { throw EvaluationInputError(file, "\(place): '\(key)' is not a string") }
        return text
    }

    func box(_ item: [String: Any], at place: String) throws -> [Double] {
        guard let numbers = try value(item, "bbox", at: place) as? [NSNumber], numbers.count == 4,
              numbers.allSatisfy({ $0.doubleValue.isFinite }) else {
            throw EvaluationInputError(file, "\(place): 'bbox' is not four numbers [x, y, width, height]")
        }
        return numbers.map(\.doubleValue)
    }
}
