// The browser worker renders this script into a page that connects back to
// the server; `api` is the connection. What api.export receives becomes the
// app's "default" service.
console.log("hello from the window app in", window.env.get("HYPHA_WORKSPACE"));
document.body.innerHTML = "<h1>Hello Window</h1>";
await api.export({
  name: "Hello Window",
  hello: (name) => `hello ${name} from ${window.env.get("HYPHA_APP_ID")}`,
  title: () => document.title,
});
