public import SystemCalls

/// A netlink request the kernel refused, or that could not be sent or read back, naming what was
/// asked: "adding 198.18.0.5 to ipset RANDSNAT-X: the element already exists (errno 4105)",
/// "creating bridge cni0: File exists (EEXIST)". Also the error of this module's other system calls
/// (namespaces, sysctls, threads), so a caller catches one type for everything below `PodNetwork`.
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done, as a verb phrase ("adding address 198.18.0.1/16 to").
    public let operation: String
    /// The link, set, entry or path it was done to.
    public let object: String
    /// The kernel's errno; nil when the failure is randsnat's own (a malformed reply, a missing link).
    public let errno: Errno?
    /// The reason in words: the errno's message, or what a subsystem's own number means (ipset's 4096
    /// and up), or randsnat's own explanation.
    public let reason: String
    /// The kernel's extended acknowledgement message (NLMSGERR_ATTR_MSG), when it gave one.
    public let kernelMessage: String?

    @inline(never)
    public init(operation: String, object: String, errno: Errno?, reason: String? = nil, kernelMessage: String? = nil) {
        self.operation = operation
        self.object = object
        self.errno = errno
        self.reason = reason ?? errno?.message ?? "failed"
        self.kernelMessage = kernelMessage
    }

    /// A failure with a raw errno (0: randsnat's own), as the first version of this type took it.
    public init(operation: String, object: String, code: Int32, reason: String) {
        self.init(operation: operation, object: object, errno: code == 0 ? nil : Errno(code), reason: reason)
    }

    /// A failed system call of this module.
    @inline(never)
    init(_ error: SystemCallError) {
        self.init(operation: error.operation, object: error.object, errno: error.errno)
    }

    /// The errno, positive; 0 when the failure is randsnat's own.
    public var code: Int32 { errno?.code ?? 0 }

    /// The kernel did not answer in time (`NetlinkSocket.answerTimeout`): worth a retry.
    public var isTimeout: Bool { errno == .timedOut }

    public var description: String {
        var text = object.isEmpty ? "\(operation): \(reason)" : "\(operation) \(object): \(reason)"
        if let errno { text += " (\(errno.name))" }
        if let kernelMessage, !kernelMessage.isEmpty { text += "; the kernel says: \(kernelMessage)" }
        return text
    }
}
