/**
 * The page's error box, shown next to the action that failed: the one `#error` element is moved to
 * just after the row of the button or input the user worked (or to the top of the page for errors
 * that belong to no action, such as the backend failing to start), so it appears where the user is
 * looking, not a screen away.
 */

export class ErrorBox {
  /** Where the box lives when no action is named (its place in the HTML, under the header). */
  private readonly home: { parent: Node; next: Node | null };

  constructor(private readonly box: HTMLElement) {
    this.home = { parent: box.parentNode!, next: box.nextSibling };
    box.querySelector('button')?.addEventListener('click', () => this.clear());
  }

  /**
   * Shows `err` next to `near` (a button, input or any element of the action; the box goes after its
   * `.row`), or at the top of the page when `near` is null. Also logs it for developers.
   *
   * @example
   * errors.show(new Error('no model'), document.getElementById('train'));
   */
  show(err: unknown, near: Element | null = null): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.box.querySelector('.error-title')!.textContent = `${e.name}:`;
    this.box.querySelector('.error-message')!.textContent = e.message;
    const anchor = near ? (near.closest('.row, #drop-zone') ?? near) : null;
    if (anchor) anchor.after(this.box);
    else this.home.parent.insertBefore(this.box, this.home.next);
    this.box.dataset.near = near?.id ?? '';
    this.box.hidden = false;
    console.error(e);
  }

  clear(): void {
    this.box.hidden = true;
  }
}
