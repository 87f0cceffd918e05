package transport

// Internals the external tests reach.
var PasswordOnly = passwordOnly
