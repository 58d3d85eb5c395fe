package main

// defaultAppID gives an app without an "id" in its manifest the id that
// hypha run and hypha apps install both use: a slug of its name (the
// manifest's name, else the directory's or file's name). A name with no
// letter or digit leaves the choice to the server.
func defaultAppID(app *appSource) {
	if _, ok := app.Manifest["id"]; ok {
		return
	}
	if name, _ := app.Manifest["name"].(string); name != "" {
		if id := slug(name); id != "" {
			app.Manifest["id"] = id
		}
	}
}
