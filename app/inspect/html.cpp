#include "app/inspect/html.h"

#include <libxml/HTMLtree.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>
#include <openssl/evp.h>

#include <algorithm>

#include "engine/error.h"

namespace dp::app::inspect {

namespace {

const xmlChar* x(const char* s) { return reinterpret_cast<const xmlChar*>(s); }
const xmlChar* x(const std::string& s) { return x(s.c_str()); }

// libxml2 takes UTF-8 only, but a file name is any bytes (e.g. Latin-1): each byte that does not
// start a valid UTF-8 character becomes U+FFFD, the replacement character, as browsers show it.
std::string valid_utf8(const std::string& text) {
  if (xmlCheckUTF8(x(text))) return text;
  std::string out;
  for (size_t i = 0; i < text.size();) {
    int length = static_cast<int>(std::min<size_t>(4, text.size() - i));
    const int c = xmlGetUTF8Char(x(text.c_str() + i), &length);
    if (c > 0 && length > 0) {
      out.append(text, i, static_cast<size_t>(length));
      i += static_cast<size_t>(length);
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace

HtmlNode HtmlNode::add(const char* tag, Attributes attributes, const std::string& content) {
  HtmlNode child(xmlNewChild(node_, nullptr, x(tag), nullptr));
  for (const auto& [name, value] : attributes) child.attr(name, value);
  if (!content.empty()) child.text(content);
  return child;
}

HtmlNode& HtmlNode::text(const std::string& content) {
  const std::string valid = valid_utf8(content);
  xmlAddChild(node_, xmlNewTextLen(x(valid), static_cast<int>(valid.size())));
  return *this;
}

HtmlNode& HtmlNode::attr(const char* name, const std::string& value) {
  xmlSetProp(node_, x(name), x(valid_utf8(value)));
  return *this;
}

HtmlNode& HtmlNode::style_text(const std::string& css) {
  DP_CHECK(css.find("</") == std::string::npos, "a style sheet must not contain \"</\"",
           "it would end the <style> element early");
  return text(css);
}

HtmlDocument::HtmlDocument(const std::string& title, const std::string& css) {
  doc_ = htmlNewDocNoDtD(nullptr, nullptr);
  xmlCreateIntSubset(doc_, x("html"), nullptr, nullptr);  // <!DOCTYPE html>
  xmlNodePtr html = xmlNewNode(nullptr, x("html"));
  xmlDocSetRootElement(doc_, html);
  xmlSetProp(html, x("lang"), x("en"));
  HtmlNode head(xmlNewChild(html, nullptr, x("head"), nullptr));
  head.add("meta", {{"charset", "utf-8"}});
  head.add("meta", {{"name", "viewport"}, {"content", "width=device-width, initial-scale=1"}});
  head.add("title", {}, title);
  if (!css.empty()) head.add("style").style_text(css);
  body_ = xmlNewChild(html, nullptr, x("body"), nullptr);
}

HtmlDocument::~HtmlDocument() { xmlFreeDoc(doc_); }

HtmlNode HtmlDocument::body() { return HtmlNode(body_); }

std::string HtmlDocument::str() const {
  xmlChar* out = nullptr;
  int size = 0;
  // No document encoding: non-ASCII characters (σ, →, class names) are written as character
  // references, so the page is plain ASCII. No pretty-printing, which would add whitespace inside
  // inline content.
  htmlDocDumpMemoryFormat(doc_, &out, &size, 0);
  DP_CHECK(out != nullptr, "libxml2 could not serialise the HTML page", "out of memory?");
  std::string s(reinterpret_cast<const char*>(out), static_cast<size_t>(size));
  xmlFree(out);
  return s;
}

std::string base64(const std::vector<uint8_t>& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string data_uri(const std::string& mime, const std::vector<uint8_t>& bytes) {
  return "data:" + mime + ";base64," + base64(bytes);
}

}  // namespace dp::app::inspect
