/// The parts of a CNI result (spec "Success") that a chained plugin reads, and the conversion of
/// a result between spec versions.
public enum CNIResult {
    /// One address of the result's `ips`, as written (`"198.18.0.2/24"`).
    public struct Address: Equatable, Sendable {
        public let cidr: String
        /// The interface's name when `interface` indexes into `interfaces`.
        public let interfaceName: String?
        /// Its place in `ips` (for messages that name it).
        public let index: Int
    }

    /// The addresses of the pod's interface `ifName` (`CNI_IFNAME`), as portmap finds them: those whose
    /// `interface` is a sandbox interface of that name. When no sandbox interface has that name, those
    /// whose interface has any `sandbox`. An address that names no interface counts as the pod's in
    /// both cases (0.3.x results may omit `interface`).
    public static func podAddresses(_ result: JSONValue, ifName: String) throws(CNIError) -> [Address] {
        guard let object = result.objectValue else {
            throw CNIError(.decodingFailure, "prevResult must be an object, not \(result.typeNameWithArticle)")
        }
        var interfaces: [(name: String, sandbox: String)] = []
        if let value = object["interfaces"], value != .null {
            guard let items = value.arrayValue else {
                throw CNIError(.decodingFailure, "prevResult.interfaces must be an array, not \(value.typeNameWithArticle)")
            }
            for (index, item) in items.enumerated() {
                guard let entry = item.objectValue else {
                    throw CNIError(.decodingFailure, "prevResult.interfaces[\(index)] must be an object, not \(item.typeNameWithArticle)")
                }
                let name = try optionalString(entry, "name", at: "prevResult.interfaces[\(index)]") ?? ""
                let sandbox = try optionalString(entry, "sandbox", at: "prevResult.interfaces[\(index)]") ?? ""
                interfaces.append((name, sandbox))
            }
        }
        let named = interfaces.contains { !$0.sandbox.isEmpty && $0.name == ifName }
        var addresses: [Address] = []
        if let value = object["ips"], value != .null {
            guard let items = value.arrayValue else {
                throw CNIError(.decodingFailure, "prevResult.ips must be an array, not \(value.typeNameWithArticle)")
            }
            for (index, item) in items.enumerated() {
                let place = "prevResult.ips[\(index)]"
                guard let entry = item.objectValue else {
                    throw CNIError(.decodingFailure, "\(place) must be an object, not \(item.typeNameWithArticle)")
                }
                guard let cidr = try optionalString(entry, "address", at: place) else {
                    throw CNIError(.invalidConfig, "\(place) has no \"address\"")
                }
                guard let interfaceValue = entry["interface"], interfaceValue != .null else {
                    addresses.append(Address(cidr: cidr, interfaceName: nil, index: index))
                    continue
                }
                guard let interfaceIndex = interfaceValue.intValue else {
                    throw CNIError(.decodingFailure, "\(place).interface must be an integer, not \(interfaceValue.typeNameWithArticle)")
                }
                guard interfaceIndex >= 0, interfaceIndex < interfaces.count else {
                    throw CNIError(.invalidConfig,
                                   "\(place).interface is \(interfaceIndex), but prevResult lists \(interfaces.count) interfaces")
                }
                let interface = interfaces[Int(interfaceIndex)]
                if !interface.sandbox.isEmpty && (!named || interface.name == ifName) {
                    addresses.append(Address(cidr: cidr, interfaceName: interface.name, index: index))
                }
            }
        }
        return addresses
    }

    /// The fields of an `interfaces` entry that results before 1.0.0 do not have (libcni's 1.0.0 to
    /// 0.4.0 converter leaves them out).
    static let interfaceFieldsSince100: [String] = ["mtu", "socketPath", "pciID"]

    /// `result` in the shape of `version`: `ips[].version` is present before 1.0.0 and absent from
    /// 1.0.0 on, and interfaces lose `interfaceFieldsSince100` before 1.0.0; every other field passes
    /// through unchanged.
    public static func convert(_ result: JSONValue, to version: CNIVersion) throws(CNIError) -> JSONValue {
        guard var object = result.objectValue else {
            throw CNIError(.decodingFailure, "prevResult must be an object, not \(result.typeNameWithArticle)")
        }
        if object["ip4"] != nil || object["ip6"] != nil {
            throw CNIError(.incompatibleVersion, "prevResult is a 0.2.0-style result (ip4/ip6)",
                           details: "randsnat understands results of cniVersion 0.3.0 and later")
        }
        object["cniVersion"] = .string(version.description)
        if let items = object["ips"]?.arrayValue {
            var converted: [JSONValue] = []
            for (index, item) in items.enumerated() {
                guard var entry = item.objectValue else {
                    throw CNIError(.decodingFailure, "prevResult.ips[\(index)] must be an object, not \(item.typeNameWithArticle)")
                }
                if version < CNIVersion(1, 0, 0) {
                    let address = entry["address"]?.stringValue ?? ""
                    entry["version"] = .string(address.utf8Contains(":") ? "6" : "4")
                } else {
                    entry["version"] = nil
                }
                converted.append(.object(entry))
            }
            object["ips"] = .array(converted)
        }
        if version < CNIVersion(1, 0, 0), let items = object["interfaces"]?.arrayValue {
            object["interfaces"] = .array(items.map { item in
                guard var entry = item.objectValue else { return item }
                for key in interfaceFieldsSince100 { entry[key] = nil }
                return .object(entry)
            })
        }
        return .object(object)
    }

    static func optionalString(_ object: [JSONKey: JSONValue], _ key: String, at place: String) throws(CNIError) -> String? {
        guard let value = object[key], value != .null else { return nil }
        guard let text = value.stringValue else {
            throw CNIError(.decodingFailure, "\(place).\(key) must be a string, not \(value.typeNameWithArticle)")
        }
        return text
    }
}

extension CNIResult {
    /// One `ips` entry of an IPAM result.
    public struct IPConfig: Equatable, Sendable {
        public let address: String
        public let gateway: String?
    }

    /// One `routes` entry.
    public struct Route: Equatable, Sendable {
        public let dst: String
        public let gw: String?
    }

    /// The parts of an IPAM plugin's result an interface plugin uses (spec "IP Allocation").
    public static func ipamResult(_ result: JSONValue) throws(CNIError) -> (ips: [IPConfig], routes: [Route], dns: JSONValue?) {
        guard let object = result.objectValue else {
            throw CNIError(.decodingFailure, "the IPAM result must be an object, not \(result.typeNameWithArticle)")
        }
        var ips: [IPConfig] = []
        for (index, item) in (object["ips"]?.arrayValue ?? []).enumerated() {
            let place = "IPAM result ips[\(index)]"
            guard let entry = item.objectValue else { throw CNIError(.decodingFailure, "\(place) must be an object") }
            guard let address = try optionalString(entry, "address", at: place) else {
                throw CNIError(.decodingFailure, "\(place) has no address")
            }
            ips.append(IPConfig(address: address, gateway: try optionalString(entry, "gateway", at: place)))
        }
        var routes: [Route] = []
        for (index, item) in (object["routes"]?.arrayValue ?? []).enumerated() {
            let place = "IPAM result routes[\(index)]"
            guard let entry = item.objectValue, let dst = try optionalString(entry, "dst", at: place) else {
                throw CNIError(.decodingFailure, "\(place) must be an object with a \"dst\"")
            }
            routes.append(Route(dst: dst, gw: try optionalString(entry, "gw", at: place)))
        }
        let dns = object["dns"].flatMap { $0 == .null ? nil : $0 }
        return (ips, routes, dns)
    }
}
