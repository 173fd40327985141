// Progressive enhancement only: every page works without this file.
// Shows "Copy" buttons for the recovery codes and copies them on click.
document.querySelectorAll("[data-copy]").forEach((button) => {
  const target = document.getElementById(button.dataset.copy);
  if (!target || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const text = [...target.querySelectorAll("code")].map((c) => c.textContent).join("\n");
    await navigator.clipboard.writeText(text);
    button.textContent = button.dataset.copied || "✓";
  });
});
