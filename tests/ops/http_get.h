#pragma once
// A minimal blocking HTTP/1.0 client for tests: sends `request` verbatim to
// 127.0.0.1:port and returns the status code and body (-1: no answer).
#include <string>

namespace spt::test {

struct HttpReply {
  int status = -1;
  std::string headers, body;
};

HttpReply http_raw(int port, const std::string& request, double timeout_s = 5);
inline HttpReply http_get(int port, const std::string& path) {
  return http_raw(port, "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n");
}

}  // namespace spt::test
