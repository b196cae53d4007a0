// HTML pages built as a document tree with libxml2 and serialised by its HTML writer: text and
// attribute values are escaped by the library wherever they go, never by hand, so a class name,
// file path or config value holding <, & or quotes shows as written and cannot break the page
// (bytes that are not UTF-8, e.g. a Latin-1 file name, show as U+FFFD).
// Images travel inside the page as base64 data URIs (OpenSSL's encoder), so it opens offline.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct _xmlNode;
struct _xmlDoc;

namespace dp::app::inspect {

using Attributes = std::initializer_list<std::pair<const char*, std::string>>;

// An element of an HtmlDocument (a handle: copies refer to the same element).
class HtmlNode {
 public:
  explicit HtmlNode(_xmlNode* node) : node_(node) {}
  // A child element, with attributes and optional text content; returns it.
  HtmlNode add(const char* tag, Attributes attributes = {}, const std::string& text = "");
  // Text appended to this element (escaped on output).
  HtmlNode& text(const std::string& text);
  HtmlNode& attr(const char* name, const std::string& value);
  // Raw text for <style> content: the serialiser writes a style element's text verbatim, so it
  // must not contain "</" (checked).
  HtmlNode& style_text(const std::string& css);

 private:
  _xmlNode* node_;
};

class HtmlDocument {
 public:
  HtmlDocument(const std::string& title, const std::string& css);
  ~HtmlDocument();
  HtmlDocument(const HtmlDocument&) = delete;
  HtmlDocument& operator=(const HtmlDocument&) = delete;

  HtmlNode body();
  std::string str() const;  // "<!DOCTYPE html>\n<html>...", ASCII (character references)

 private:
  _xmlDoc* doc_;
  _xmlNode* body_;
};

std::string base64(const std::vector<uint8_t>& bytes);
// "data:MIME;base64,...", an <img> src that needs no file beside the page.
std::string data_uri(const std::string& mime, const std::vector<uint8_t>& bytes);

}  // namespace dp::app::inspect
